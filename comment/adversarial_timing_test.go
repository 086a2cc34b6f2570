package comment

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// adversarial returns comments of the maximum length built to be slow to
// fold: large precomposed scripts, runs of combining marks and invisible
// characters, emoji sequences, look-alikes of every kind, each with a
// blocked word in front.
func adversarial() map[string]string {
	fill := func(prefix, unit string) string {
		var b strings.Builder
		b.WriteString(prefix)
		n := len([]rune(prefix))
		u := []rune(unit)
		for i := 0; n < MaxLen; i++ {
			b.WriteRune(u[i%len(u)])
			n++
		}
		return b.String()
	}
	return map[string]string{
		"ascii":              fill("bad ", "what a strike, best match of the season "),
		"hangul":             fill("scum ", "흆"),
		"hangul sentence":    fill("bad ", "오늘 경기 정말 최고였어요 "),
		"han":                fill("bad ", "進球了这是最好的比赛没有之一"),
		"combining marks":    fill("b\u0336a\u0336d\u0336 ", "a\u0301\u0302\u0303\u0304\u0305\u0306\u0307"),
		"zero-width":         fill("bad ", "\u200b\u200c\u200d\u2060\ufeffx"),
		"emoji zwj":          fill("bad ", "👨\u200d👩\u200d👧\u200d👦"),
		"mixed scripts":      fill("bad ", "аbсdеfдαβγ𝐛𝐚𝐝ｂａｄⓑⓐⓓ흆進"),
		"regional":           fill("🇧 🇦 🇩 ", "🇧🇦🇩"),
		"math alphanumerics": fill("bad ", "𝐛𝐚𝐝𝒃𝒂𝒅𝓫𝓪𝓭𝔟𝔞𝔡"),
		"digits and symbols": fill("b4d ", "1d10t$cum5@"),
		"word prefixes":      fill("", "word "),
	}
}

// BenchmarkMaskAdversarial cleans and masks every adversarial comment
// with the 1,000-word list and reports the per-comment cost at the median
// and the 99th percentile over the inputs and rounds (p50-ns, p99-ns):
// the filter's bound is on the worst comment, not on the average. ns/op is
// one round over all the inputs.
func BenchmarkMaskAdversarial(b *testing.B) {
	var list strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&list, "word%d\n", i)
	}
	list.WriteString("bad\nscum\nidiot\n")
	w := mustWords(b, list.String())
	inputs := adversarial()
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		if n := len([]rune(inputs[name])); n != MaxLen {
			b.Fatalf("%s: %d characters; want %d", name, n, MaxLen)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	b.ReportAllocs()
	var costs []time.Duration
	byInput := map[string][]time.Duration{}
	for b.Loop() {
		for _, name := range names {
			start := time.Now()
			text, err := Clean(inputs[name])
			if err != nil {
				b.Fatal(err)
			}
			_ = w.Mask(text)
			d := time.Since(start)
			costs = append(costs, d)
			byInput[name] = append(byInput[name], d)
		}
	}
	slices.Sort(costs)
	b.ReportMetric(float64(costs[len(costs)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(costs[len(costs)*99/100].Nanoseconds()), "p99-ns")
	if testing.Verbose() {
		for _, name := range names {
			c := byInput[name]
			slices.Sort(c)
			b.Logf("%-20s p50 %v", name, c[len(c)/2])
		}
	}
}
