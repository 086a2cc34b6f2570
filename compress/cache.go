package compress

import "sync/atomic"

// Cache holds the encoded bodies of the two newest generations in a fixed
// number of slots each. A generation is whatever makes bodies stale when it
// changes; pull uses one Cache per stream, the second it has complete as the
// generation and the cursor's distance from it as the slot. Keeping the
// previous generation lets a request that read the generation just before
// it moved still get the bytes its peers got. Moving on drops the oldest
// generation whole, so a Cache never holds more than twice its slots. Get
// and Put never lock; Get never allocates.
type Cache struct {
	slots int
	gens  atomic.Pointer[generations]
}

// generations are the current and previous generations, swapped as one, so
// that racing Puts can never pair a generation with an older previous one
// than the one it replaced.
type generations struct {
	cur, prev *generation
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

func (gs *generations) find(gen int64) *generation {
	switch {
	case gs == nil:
		return nil
	case gs.cur.id == gen:
		return gs.cur
	case gs.prev != nil && gs.prev.id == gen:
		return gs.prev
	}
	return nil
}

// Get returns the body stored for slot of generation gen, or nil.
func (c *Cache) Get(gen int64, slot int) *Body {
	if g := c.gens.Load().find(gen); g != nil {
		return g.bodies[slot].Load()
	}
	return nil
}

// Put stores b for slot of generation gen unless a body is already there, and
// returns the stored body, so that concurrent builders all serve the same
// bytes. A Put for a generation older than the two kept returns b without
// storing it; a newer generation becomes the current one.
func (c *Cache) Put(gen int64, slot int, b *Body) *Body {
	for {
		gs := c.gens.Load()
		if g := gs.find(gen); g != nil {
			if g.bodies[slot].CompareAndSwap(nil, b) {
				return b
			}
			return g.bodies[slot].Load()
		}
		var cur *generation
		if gs != nil {
			cur = gs.cur
			if cur.id > gen {
				return b // older than both kept generations
			}
		}
		fresh := &generation{id: gen, bodies: make([]atomic.Pointer[Body], c.slots)}
		fresh.bodies[slot].Store(b)
		if c.gens.CompareAndSwap(gs, &generations{cur: fresh, prev: cur}) {
			return b
		}
	}
}
