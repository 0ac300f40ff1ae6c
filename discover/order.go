package discover

import (
	"cmp"
	"slices"
)

// StartOrder returns cs in the order to start them: each container after
// the containers of the services it depends on (ContainerRef.DependsOn,
// within its project; services not in cs are ignored), otherwise by
// service, then name. A dependency cycle is broken at its first service in
// that order; no container is dropped. Stop in the reverse order.
func StartOrder(cs []ContainerRef) []ContainerRef {
	sorted := slices.Clone(cs)
	slices.SortStableFunc(sorted, func(a, b ContainerRef) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Project, b.Project), cmp.Compare(a.ID, b.ID))
	})

	// One node per service, in the order of its first container.
	type service struct{ project, name string }
	index := map[service]int{}
	var members [][]ContainerRef
	for _, c := range sorted {
		s := service{c.Project, c.Service}
		i, ok := index[s]
		if !ok {
			i = len(members)
			index[s] = i
			members = append(members, nil)
		}
		members[i] = append(members[i], c)
	}
	deps := make([][]int, len(members))
	for i, m := range members {
		for _, c := range m {
			for _, d := range c.DependsOn {
				if j, ok := index[service{c.Project, d}]; ok && j != i && !slices.Contains(deps[i], j) {
					deps[i] = append(deps[i], j)
				}
			}
		}
	}

	done := make([]bool, len(members))
	// ready: every dependency is started, or (to break a cycle, when comp
	// is set) is in the node's own cycle.
	ready := func(i int, comp []int) bool {
		for _, j := range deps[i] {
			if !done[j] && (comp == nil || comp[j] != comp[i]) {
				return false
			}
		}
		return true
	}
	first := func(comp []int) int {
		for i := range members {
			if !done[i] && ready(i, comp) {
				return i
			}
		}
		return -1
	}
	out := make([]ContainerRef, 0, len(cs))
	for range members {
		next := first(nil)
		if next < 0 {
			// Only cycles left (and what depends on them): start the first
			// service of a cycle that waits for nothing outside itself.
			pending := make([][]int, len(deps))
			for i := range deps {
				for _, j := range deps[i] {
					if !done[i] && !done[j] {
						pending[i] = append(pending[i], j)
					}
				}
			}
			next = first(components(pending))
		}
		done[next] = true
		out = append(out, members[next]...)
	}
	return out
}

// components returns the strongly connected component of each node of the
// graph deps (Tarjan's algorithm).
func components(deps [][]int) []int {
	n := len(deps)
	comp, index, low := make([]int, n), make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	next, ncomp := 0, 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range deps[v] {
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp[w] = ncomp
				if w == v {
					break
				}
			}
			ncomp++
		}
	}
	for v := range n {
		if index[v] < 0 {
			visit(v)
		}
	}
	return comp
}
