package dbengine

import "errors"

var (
	// ErrNotEmpty means a postgres restore was refused, before anything
	// was changed, because databases of the server hold objects: a
	// pg_dumpall restores a whole cluster and cannot merge into data.
	ErrNotEmpty = errors.New("dbengine: the database server already holds data")
	// ErrInUse means a postgres restore was refused, before anything was
	// changed, because a database it would replace has open sessions.
	ErrInUse = errors.New("dbengine: the database is in use")
	// ErrIncompleteDump means the dump ended early (cut short, or reading
	// it failed). The client was made to fail on it, so a table whose data
	// was cut keeps none of it, but what came before was restored.
	ErrIncompleteDump = errors.New("dbengine: the dump is incomplete")
)
