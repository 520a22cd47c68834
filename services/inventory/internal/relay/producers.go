package relay

import (
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"backinstock/shared/kafka"
)

// producers holds the one producer the shard loops share and replaces it
// after a failure: a sarama idempotent producer that gave records up may
// hold sequence state the brokers no longer accept, and a fresh producer id
// starts clean. Sends hold the read lock so a replacement never closes the
// producer under a Send.
type producers struct {
	cfg kafka.Config
	log *zap.Logger

	mu  sync.RWMutex
	p   *kafka.Producer
	gen int
}

// errReplaced tells a shard loop its producer was replaced mid-batch.
var errReplaced = errors.New("producer replaced after a failure")

// get returns the current producer, connecting one if there is none.
func (h *producers) get() (*kafka.Producer, int, error) {
	h.mu.RLock()
	p, gen := h.p, h.gen
	h.mu.RUnlock()
	if p != nil {
		return p, gen, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.p == nil {
		np, err := kafka.NewProducer(h.cfg, kafka.ProducerOptions{}, h.log)
		if err != nil {
			return nil, 0, fmt.Errorf("connect producer: %w", err)
		}
		h.p = np
		h.gen++
	}
	return h.p, h.gen, nil
}

// sending runs send while the producer of generation gen cannot be closed.
func (h *producers) sending(gen int, send func() error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.gen != gen || h.p == nil {
		return errReplaced
	}
	return send()
}

// broken closes the producer of generation gen, if it is still current.
func (h *producers) broken(gen int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen || h.p == nil {
		return
	}
	if err := h.p.Close(); err != nil {
		h.log.Debug("close failed producer", zap.Error(err))
	}
	h.p = nil
}

func (h *producers) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.p == nil {
		return nil
	}
	err := h.p.Close()
	h.p = nil
	return err
}
