package runner

import (
	"cmp"
	"slices"

	"github.com/platback/platback/discover"
)

// StopWindow is a set of stop-during-backup containers that are stopped
// once, together, while the volume targets that need them stopped are
// backed up.
type StopWindow struct {
	Stop    []discover.ContainerRef
	Targets []int // indexes into the plan's targets, in plan order
}

// StopWindows groups the volume targets that need containers stopped: two
// targets share a window when they need a container in common (the volumes
// of one service; a volume shared by two stopped services joins their
// windows), so every container is stopped and started once per run and a
// service's volumes are captured at the same moment. windowOf maps a
// target index to its window.
func StopWindows(targets []discover.Target) (windows []StopWindow, windowOf map[int]int) {
	parent := map[string]string{}
	var find func(string) string
	find = func(id string) string {
		if parent[id] == id {
			return id
		}
		parent[id] = find(parent[id])
		return parent[id]
	}
	refs := map[string]discover.ContainerRef{}
	var order []string
	for _, t := range targets {
		if t.Volume == nil {
			continue
		}
		for _, c := range t.Volume.Stop {
			if _, ok := parent[c.ID]; !ok {
				parent[c.ID] = c.ID
				refs[c.ID] = c
				order = append(order, c.ID)
			}
			parent[find(c.ID)] = find(t.Volume.Stop[0].ID)
		}
	}
	windowOf = map[int]int{}
	byRoot := map[string]int{}
	for i, t := range targets {
		if t.Volume == nil || len(t.Volume.Stop) == 0 {
			continue
		}
		root := find(t.Volume.Stop[0].ID)
		w, ok := byRoot[root]
		if !ok {
			w = len(windows)
			byRoot[root] = w
			windows = append(windows, StopWindow{})
		}
		windows[w].Targets = append(windows[w].Targets, i)
		windowOf[i] = w
	}
	for _, id := range order {
		w := byRoot[find(id)]
		windows[w].Stop = append(windows[w].Stop, refs[id])
	}
	for i := range windows {
		slices.SortFunc(windows[i].Stop, func(a, b discover.ContainerRef) int { return cmp.Compare(a.Name, b.Name) })
	}
	return windows, windowOf
}
