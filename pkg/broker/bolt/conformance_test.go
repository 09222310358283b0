package bolt

import (
	"path/filepath"
	"testing"

	"github.com/sse-broker/broker/pkg/broker"
	"github.com/sse-broker/broker/pkg/broker/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o broker.StoreOptions, fan broker.Fanout) broker.Store {
		s, err := Open(filepath.Join(t.TempDir(), "broker.db"), o, fan)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
