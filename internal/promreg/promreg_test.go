package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counter(reg prometheus.Registerer) prometheus.Counter {
	return Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "promreg_test_total", Help: "A test counter."}))
}

// gathered returns the value of promreg_test_total that reg exposes.
func gathered(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "promreg_test_total" && len(mf.Metric) == 1 {
			return mf.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatal("promreg_test_total not exposed once")
	return 0
}

// TestRegistriesCountApart: one registry shares one series among the
// components that register it; two registries count apart; nil registers
// nowhere.
func TestRegistriesCountApart(t *testing.T) {
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	a1, a2, b1, none := counter(a), counter(a), counter(b), counter(nil)
	a1.Inc()
	a2.Inc()
	b1.Inc()
	none.Inc()
	if got := gathered(t, a); got != 2 {
		t.Errorf("registry a exposes %v; want 2 (both components)", got)
	}
	if got := gathered(t, b); got != 1 {
		t.Errorf("registry b exposes %v; want 1", got)
	}
	var m dto.Metric
	if err := none.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("the unregistered counter holds %v (%v); want 1", m.GetCounter().GetValue(), err)
	}
}
