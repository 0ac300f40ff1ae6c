// Package ids shortens ids the way people read them: Docker's 12-character
// container ids and restic's 8-character snapshot ids.
package ids

// Container returns the first 12 characters of a container id, as docker ps
// shows it.
func Container(id string) string { return prefix(id, 12) }

// Snapshot returns the first 8 characters of a restic id (snapshot, lock,
// pack), as restic shows it.
func Snapshot(id string) string { return prefix(id, 8) }

func prefix(id string, n int) string {
	if len(id) > n {
		return id[:n]
	}
	return id
}
