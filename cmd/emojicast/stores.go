package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
)

// nodeStores are the stores of a process: the main one, which pull reads
// and push writes, and, for push, the other regions' Redis it writes too.
type nodeStores struct {
	main    namedStore
	regions []namedStore
}

// namedStore is a store and the name logs and metrics give it.
type namedStore struct {
	name string
	store.Store
}

// openStores opens the in-memory store, or Redis and the region Redis.
func openStores(r role, f *nodeFlags, log *slog.Logger, reg prometheus.Registerer) (*nodeStores, error) {
	if f.redis == "" {
		historyBytes := f.historyMB << 20
		if f.history <= 0 || historyBytes <= 0 {
			historyBytes = -1 // the flags' 0 means none; the option's 0 means the default
		}
		mem := store.NewMemory(store.MemoryOptions{
			SealDelay: f.sealDelay, MaxStreams: f.maxStreams, MaxComments: f.commentBudget,
			History: f.history, HistoryBytes: historyBytes, Registerer: reg,
		})
		return &nodeStores{main: namedStore{"memory", mem}}, nil
	}
	store.LogRedisTo(log)
	main, err := openRedis(f, f.redis, reg)
	if err != nil {
		return nil, err
	}
	s := &nodeStores{main: main}
	if !r.push {
		return s, nil
	}
	for _, spec := range f.regionRedis {
		t, err := openRedis(f, spec, reg)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("--region-redis: %w", err)
		}
		s.regions = append(s.regions, t)
	}
	return s, nil
}

func openRedis(f *nodeFlags, spec string, reg prometheus.Registerer) (namedStore, error) {
	client, err := store.NewRedisClient(spec)
	if err != nil {
		return namedStore{}, err
	}
	pointsMaxLen := f.pointsMaxLen
	if pointsMaxLen <= 0 {
		pointsMaxLen = -1 // the flag's 0 means none; the option's 0 means the default
	}
	history := f.history
	if history <= 0 {
		history = -1 // none, as for the points
	}
	st, err := store.NewRedis(store.RedisOptions{
		Client: client, SealDelay: f.sealDelay, PointsMaxLen: pointsMaxLen, MaxComments: f.commentBudget,
		History: history, MinReplicas: f.minReplicas, Registerer: reg,
	})
	if err != nil {
		_ = client.Close()
		return namedStore{}, err
	}
	return namedStore{"redis " + store.RedisName(spec), st}, nil
}

// targets are the stores push writes to, each with its own backlog.
func (s *nodeStores) targets() []push.Target {
	var targets []push.Target
	for _, st := range s.all() {
		targets = append(targets, push.Target{Name: st.name, Store: st.Store})
	}
	return targets
}

func (s *nodeStores) all() []namedStore {
	return append([]namedStore{s.main}, s.regions...)
}

func (s *nodeStores) names() []string {
	var names []string
	for _, st := range s.all() {
		names = append(names, st.name)
	}
	return names
}

func (s *nodeStores) close() {
	for _, st := range s.all() {
		_ = st.Close()
	}
}
