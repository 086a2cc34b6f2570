package compress

import "sync/atomic"

// Cache holds the encoded bodies of one generation in a fixed number of
// slots. A generation is whatever makes bodies stale when it changes; pull
// uses one Cache per stream, the second it has complete as the generation and
// the cursor's distance from it as the slot. Moving to a new generation drops
// the old one's bodies all at once, so a Cache never holds more than its
// slots. Get and Put never lock; Get never allocates.
type Cache struct {
	slots int
	gen   atomic.Pointer[generation]
}

type generation struct {
	id     int64
	bodies []atomic.Pointer[Body]
}

// NewCache returns a Cache with the given number of slots per generation.
func NewCache(slots int) *Cache {
	if slots <= 0 {
		panic("BUG: compress.NewCache needs at least one slot")
	}
	return &Cache{slots: slots}
}

// Get returns the body stored for slot of generation gen, or nil.
func (c *Cache) Get(gen int64, slot int) *Body {
	g := c.gen.Load()
	if g == nil || g.id != gen {
		return nil
	}
	return g.bodies[slot].Load()
}

// Put stores b for slot of generation gen unless a body is already there, and
// returns the stored body, so that concurrent builders all serve the same
// bytes. A Put for a generation older than the current one returns b without
// storing it; a newer generation replaces the current one.
func (c *Cache) Put(gen int64, slot int, b *Body) *Body {
	for {
		g := c.gen.Load()
		switch {
		case g != nil && g.id == gen:
			if g.bodies[slot].CompareAndSwap(nil, b) {
				return b
			}
			return g.bodies[slot].Load()
		case g != nil && g.id > gen:
			return b
		}
		fresh := &generation{id: gen, bodies: make([]atomic.Pointer[Body], c.slots)}
		fresh.bodies[slot].Store(b)
		if c.gen.CompareAndSwap(g, fresh) {
			return b
		}
	}
}
