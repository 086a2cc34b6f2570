package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStopRestartKeepsData: what was committed before Stop is there after
// Restart, on the same DSN.
func TestStopRestartKeepsData(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE t (n int); INSERT INTO t VALUES (42)")
	s.Stop()
	if s.ping() == nil {
		t.Fatal("the server answers after Stop")
	}
	s.Restart()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT n FROM t").Scan(&n); err != nil || n != 42 {
		t.Fatalf("after a restart the row is %d, %v; want 42", n, err)
	}
}
