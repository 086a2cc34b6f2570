package comment

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkCleanAndMask is the text work of one comment: cleaning it and
// masking a list of 1,000 blocked words.
func BenchmarkCleanAndMask(b *testing.B) {
	var list strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&list, "word%d\n", i)
	}
	list.WriteString("bad\n")
	w := mustWords(b, list.String())
	for _, tc := range []struct{ name, text string }{
		{"clean", "what a strike, best match of the season so far 🔥🔥"},
		{"disguised", "what a ｂ.ａ.ｄ strike, best match of the season so far 🔥🔥"},
		{"cjk", "進球了！！！这是最好的比赛，没有之一"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.text)))
			for b.Loop() {
				text, err := Clean(tc.text)
				if err != nil {
					b.Fatal(err)
				}
				_ = w.Mask(text)
			}
		})
	}
}
