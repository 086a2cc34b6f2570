// Package promreg registers a component's metrics on the Registerer it was
// given, so that two nodes in one process (tests) count apart while the
// components of one process that share a registry (serve's stores, say)
// share a series, as Prometheus needs: one series per name and labels.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or the collector of the same
// description already registered there; with a nil reg it returns c
// unregistered. Any other error is a programming error (two metrics of one
// name and different labels or help) and panics.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("BUG: cannot register a metric: " + err.Error())
}
