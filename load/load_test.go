package load

import (
	"runtime"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

func TestFactorFollowsRequestRate(t *testing.T) {
	m := New(Options{MaxRPS: 1000})
	t0 := time.Unix(1000, 0)
	m.lastAt = t0
	// 3,000 requests a second, three times the budget, for a few seconds.
	for i := 1; i <= 6; i++ {
		m.update(t0.Add(time.Duration(i)*time.Second), int64(3000*i), 0)
	}
	if f := m.Factor(); f < 2.8 || f > 3.0 {
		t.Fatalf("factor %.2f at 3x the request budget; want about 3", f)
	}
	if m.RPS() != 3000 {
		t.Fatalf("RPS = %v; want 3000", m.RPS())
	}
	// Back under budget: the factor falls below 1 within a few seconds.
	for i := 7; i <= 12; i++ {
		m.update(t0.Add(time.Duration(i)*time.Second), int64(18000+100*(i-6)), 0)
	}
	if f := m.Factor(); f >= 1 {
		t.Fatalf("factor %.2f after 6 s at 10%% of the budget; want under 1", f)
	}
}

func TestFactorFollowsCPU(t *testing.T) {
	m := New(Options{MaxCPU: 0.5})
	t0 := time.Unix(1000, 0)
	m.lastAt = t0
	cores := time.Duration(runtime.GOMAXPROCS(0))
	for i := 1; i <= 8; i++ {
		// Every core busy the whole time: twice the 50% budget.
		m.update(t0.Add(time.Duration(i)*time.Second), 0, time.Duration(i)*time.Second*cores)
	}
	if f := m.Factor(); f < 1.9 || f > 2.0 {
		t.Fatalf("factor %.2f with all cores busy and a 50%% budget; want about 2", f)
	}
}

// Under a container CPU limit the runtime runs fewer Ps than the machine has
// cores: one core busy with GOMAXPROCS at 1 is the whole budget, whatever
// NumCPU says.
func TestCPUShareIsOfGOMAXPROCS(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	m := New(Options{MaxCPU: 1})
	t0 := time.Unix(1000, 0)
	m.lastAt = t0
	m.update(t0.Add(time.Second), 0, time.Second)
	if got := m.CPU(); got != 1 {
		t.Fatalf("CPU share %v with one CPU-second a second and GOMAXPROCS 1 (NumCPU %d); want 1", got, runtime.NumCPU())
	}
}

func TestNoBudgetNoFactor(t *testing.T) {
	m := New(Options{})
	m.lastAt = time.Unix(1000, 0)
	m.update(time.Unix(1001, 0), 1_000_000, time.Hour)
	if m.Factor() != 0 {
		t.Fatalf("factor %v without a budget; want 0", m.Factor())
	}
}

func TestMeterMeasuresLiveRequests(t *testing.T) {
	m := New(Options{MaxRPS: 10})
	m.Start()
	defer m.Stop()
	stop := time.Now().Add(10 * time.Second)
	testutil.Eventually(t, 10*time.Second, "meter sees a request rate over budget", func() bool {
		for range 100 {
			m.Request()
		}
		time.Sleep(10 * time.Millisecond)
		return m.Factor() > 1 || time.Now().After(stop)
	})
	if m.Factor() <= 1 {
		t.Fatalf("factor %v at ~10,000 requests/s on a 10/s budget", m.Factor())
	}
}
