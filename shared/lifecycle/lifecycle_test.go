package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"

	"backinstock/shared/lifecycle"
)

func TestPartsStopInReverseOrder(t *testing.T) {
	var (
		mu      sync.Mutex
		stopped []string
	)
	part := func(name string) lifecycle.Part {
		return lifecycle.Part{Name: name, Run: func(ctx context.Context) error {
			<-ctx.Done()
			mu.Lock()
			stopped = append(stopped, name)
			mu.Unlock()
			return nil
		}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lifecycle.Run(ctx, zap.NewNop(), part("http"), part("producer"), part("consumer")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"consumer", "producer", "http"}; !slices.Equal(stopped, want) {
		t.Fatalf("stop order %v, want %v", stopped, want)
	}
}

func TestAFailingPartStopsTheRest(t *testing.T) {
	boom := errors.New("boom")
	other := lifecycle.Part{Name: "other", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	failing := lifecycle.Part{Name: "failing", Run: func(context.Context) error { return boom }}
	err := lifecycle.Run(context.Background(), zap.NewNop(), other, failing)
	if !errors.Is(err, boom) || err.Error() != "failing: boom" {
		t.Fatalf("got %v", err)
	}
}
