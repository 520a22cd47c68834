package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

// cutDialer opens a member's connections until Cut, which closes every one
// of them and refuses new ones: what the broker sees of a SIGKILLed process
// (the kernel closes its sockets; no LeaveGroup, no last commit).
type cutDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

var errCut = errors.New("member killed")

func (d *cutDialer) Dial(network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errCut
	}
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial(network, addr)
	if err != nil {
		return nil, err
	}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *cutDialer) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// replica is one consumer process of a group, which a test kills and
// restarts: each incarnation is a new Group with its own connections and
// client id (name.N), so the broker's member list tells incarnations apart.
type replica struct {
	t    testing.TB
	c    kafka.Config
	o    kafka.GroupOptions
	h    kafka.Handler
	name string

	mu      sync.Mutex
	n       int
	dialer  *cutDialer
	cancel  context.CancelFunc
	done    chan error
	killed  sync.WaitGroup
	running bool
}

func (r *replica) clientID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%s.%d", r.name, r.n)
}

func (r *replica) start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	c := r.c
	c.ClientID = fmt.Sprintf("%s.%d", r.name, r.n)
	o := r.o
	r.dialer = &cutDialer{}
	kafka.SetDialer(&o, r.dialer)
	g, err := kafka.NewGroup(c, o, r.h, zaptest.NewLogger(r.t, zaptest.Level(zap.ErrorLevel)).With(zap.String("member", c.ClientID)))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	r.cancel, r.done, r.running = cancel, done, true
}

// kill cuts the incarnation off; its goroutines wind down in the background
// and nothing of them reaches the broker any more.
func (r *replica) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return
	}
	r.dialer.Cut()
	cancel, done := r.cancel, r.done
	r.running = false
	r.killed.Add(1)
	go func() {
		defer r.killed.Done()
		cancel()
		<-done
	}()
}

// stop shuts the live incarnation down gracefully, returns its Run error,
// and waits for the killed ones to wind down.
func (r *replica) stop() error {
	r.mu.Lock()
	running, cancel, done := r.running, r.cancel, r.done
	r.running = false
	r.mu.Unlock()
	var err error
	if running {
		cancel()
		err = <-done
	}
	r.killed.Wait()
	return err
}

// groupState is the group's state and its members' client ids, sorted.
func groupState(t testing.TB, adm sarama.ClusterAdmin, group string) (string, []string) {
	t.Helper()
	ds, err := adm.DescribeConsumerGroups([]string{group})
	if err != nil || len(ds) == 0 {
		return fmt.Sprintf("describe: %v", err), nil
	}
	var ids []string
	for _, m := range ds[0].Members {
		ids = append(ids, m.ClientId)
	}
	slices.Sort(ids)
	return ds[0].State, ids
}

// behind counts the partitions whose committed offset is short of target's.
func behind(t testing.TB, adm sarama.ClusterAdmin, group, topic string, target map[int32]int64) int {
	t.Helper()
	ps := make([]int32, 0, len(target))
	for p := range target {
		ps = append(ps, p)
	}
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if err != nil {
		return len(ps)
	}
	n := 0
	for _, p := range ps {
		if target[p] == 0 {
			continue // nothing to commit yet
		}
		if b := resp.GetBlock(topic, p); b == nil || b.Offset < target[p] {
			n++
		}
	}
	return n
}

// stormBench is a group of replicas on their own kfake cluster (the tests
// add control functions to it) with a producer writing all along.
type stormBench struct {
	t        *testing.T
	k        *testenv.Kafka
	c        kafka.Config
	topic    string
	group    string
	parts    int32
	replicas []*replica
	cl       sarama.Client
	adm      sarama.ClusterAdmin

	stopProducing context.CancelFunc
	producing     sync.WaitGroup
}

// newStormBench starts n static replicas (instance ids r0…) of one group on
// a 12-partition topic. Each batch waits 20 ms, as a rate limit would, so
// the replicas are always mid-batch when killed.
func newStormBench(t *testing.T, n int, o kafka.GroupOptions) *stormBench {
	k, err := testenv.StartKafka(1)
	if err != nil {
		t.Fatal(err)
	}
	s := &stormBench{t: t, k: k, c: kafka.Config{Brokers: k.Brokers}, topic: "storm", group: "g.storm", parts: 12}
	t.Cleanup(s.close)
	createTopic(t, s.c, s.topic, s.parts)
	if s.cl, err = kafka.NewClient(s.c); err != nil {
		t.Fatal(err)
	}
	if s.adm, err = sarama.NewClusterAdminFromClient(s.cl); err != nil {
		t.Fatal(err)
	}
	h := kafka.HandlerFunc(func(ctx context.Context, b *kafka.Batch) error { return b.Wait(ctx, 20*time.Millisecond) })
	o.Group, o.Topics, o.MaxBatch = s.group, []string{s.topic}, 10
	for i := range n {
		ro := o
		name := fmt.Sprintf("r%d", i)
		ro.InstanceID = name
		s.replicas = append(s.replicas, &replica{t: t, c: s.c, o: ro, h: h, name: name})
	}
	for _, r := range s.replicas {
		r.start()
	}
	return s
}

// produce writes a record every 5 ms until the returned stop is called.
func (s *stormBench) produce() {
	p, err := kafka.NewProducer(s.c, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopProducing = cancel
	s.producing.Add(1)
	go func() {
		defer s.producing.Done()
		defer p.Close()
		for i := 0; ctx.Err() == nil; i++ {
			k := sarama.StringEncoder(strconv.Itoa(i))
			_ = p.SendAll(ctx, []*sarama.ProducerMessage{{Topic: s.topic, Key: k, Value: k}})
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

func (s *stormBench) stopProduce() {
	if s.stopProducing != nil {
		s.stopProducing()
		s.producing.Wait()
		s.stopProducing = nil
	}
}

func (s *stormBench) close() {
	s.stopProduce()
	for _, r := range s.replicas {
		_ = r.stop()
	}
	if s.cl != nil {
		_ = s.cl.Close()
	}
	s.k.Close()
}

func (s *stormBench) live() []string {
	var ids []string
	for _, r := range s.replicas {
		ids = append(ids, r.clientID())
	}
	slices.Sort(ids)
	return ids
}

// settled waits until the group is Stable with exactly the live
// incarnations as members and has committed every record produced before
// the call, on every partition, and reports how long that took.
func (s *stormBench) settled(within time.Duration) (time.Duration, error) {
	start := time.Now()
	target := map[int32]int64{}
	for p := range s.parts {
		hwm, err := s.cl.GetOffset(s.topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		target[p] = hwm
	}
	var state string
	var members []string
	var late int
	for time.Since(start) < within {
		state, members = groupState(s.t, s.adm, s.group)
		late = behind(s.t, s.adm, s.group, s.topic, target)
		if state == "Stable" && slices.Equal(members, s.live()) && late == 0 {
			return time.Since(start), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("after %s: group %s with members %v (live: %v), %d of %d partitions behind",
		within, state, members, s.live(), late, s.parts)
}

// stormSeed is KAFKA_STORM_SEED when set (to replay a failed run), else new.
func stormSeed(t *testing.T) uint64 {
	if v := os.Getenv("KAFKA_STORM_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KAFKA_STORM_SEED=%q: %v", v, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// TestGroupRecoversFromAStormOfKills kills a random replica of three every
// 1-3 s for 20 s, each restarted 0.3-1.5 s later under its instance id,
// while records keep arriving. Kills land mid-batch and mid-rebalance,
// members die with their JoinGroup waiting at the coordinator. Within
// settleBound of the last restart the group must be Stable with exactly the
// live incarnations and have committed every record.
func TestGroupRecoversFromAStormOfKills(t *testing.T) {
	seed := stormSeed(t)
	t.Logf("storm seed %d (KAFKA_STORM_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	s := newStormBench(t, 3, kafka.GroupOptions{})
	s.produce()
	if _, err := s.settled(settleBound); err != nil {
		t.Fatalf("before the storm: %v", err)
	}
	end := time.Now().Add(20 * time.Second)
	kills := 0
	for time.Now().Before(end) {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		r := s.replicas[rng.IntN(len(s.replicas))]
		r.kill()
		kills++
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		r.start()
	}
	t.Logf("%d kills", kills)
	took, err := s.settled(settleBound)
	if err != nil {
		t.Fatalf("storm seed %d: %v", seed, err)
	}
	t.Logf("settled %s after the last restart", took.Round(time.Millisecond))
}

// TestRestartReplacesAMemberKilledWhileJoining: a new member killed while
// its JoinGroup waits at the coordinator can stay in the group on kfake,
// holding partitions it never consumes (see docs/consumer-groups.md). Its
// restart under the same instance id must take its place at once.
func TestRestartReplacesAMemberKilledWhileJoining(t *testing.T) {
	s := newStormBench(t, 1, kafka.GroupOptions{})
	s.produce()
	if _, err := s.settled(settleBound); err != nil {
		t.Fatal(err)
	}
	b := &replica{t: t, c: s.c, o: s.replicas[0].o, h: s.replicas[0].h, name: "b"}
	b.o.InstanceID = "b"
	// Kill b as soon as its JoinGroup reaches the coordinator: r0 still has
	// to rejoin, so the join waits there, and b dies waiting.
	joined := make(chan struct{})
	s.k.Cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if j := req.(*kmsg.JoinGroupRequest); j.InstanceID != nil && *j.InstanceID == "b" {
			s.k.Cluster.DropControl()
			b.kill()
			close(joined)
		} else {
			s.k.Cluster.KeepControl()
		}
		return nil, nil, false
	})
	s.replicas = append(s.replicas, b)
	b.start()
	select {
	case <-joined:
	case <-time.After(30 * time.Second):
		t.Fatal("b never sent its JoinGroup")
	}
	// The rebalance completes with the dead b.1 in it.
	testenv.Eventually(t, 30*time.Second, func() bool {
		_, members := groupState(t, s.adm, s.group)
		return slices.Contains(members, "b.1") && slices.Contains(members, "r0.1") && len(members) == 2
	}, "the rebalance completes with b.1")
	b.start()
	took, err := s.settled(restartBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("b.2 replaced b.1 and the group settled in %s", took.Round(time.Millisecond))
}

// TestStaticMemberLeavesOnShutdown: a static member stopped on purpose
// leaves at once, so its partitions do not wait out its session timeout
// (30 s here; heartbeats every 10 s).
func TestStaticMemberLeavesOnShutdown(t *testing.T) {
	const session = 30 * time.Second
	s := newStormBench(t, 2, kafka.GroupOptions{SessionTimeout: session})
	s.produce()
	if _, err := s.settled(session + settleBound); err != nil {
		t.Fatal(err)
	}
	if err := s.replicas[1].stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.replicas = s.replicas[:1]
	// The rest learn of the rebalance at their next heartbeat (session/3).
	took, err := s.settled(session/3 + restartBound)
	if err != nil {
		t.Fatalf("with a %s session timeout: %v", session, err)
	}
	t.Logf("r0 took over in %s", took.Round(time.Millisecond))
}

// TestSecondMemberWithTheSameInstanceID: two live replicas sharing an
// instance id is a configuration error; the one fenced out fails with an
// error naming the id instead of fencing the other back for ever.
func TestSecondMemberWithTheSameInstanceID(t *testing.T) {
	s := newStormBench(t, 1, kafka.GroupOptions{})
	if _, err := s.settled(settleBound); err != nil {
		t.Fatal(err)
	}
	twin := &replica{t: t, c: s.c, o: s.replicas[0].o, h: s.replicas[0].h, name: "twin"}
	twin.start()
	defer twin.stop()
	first := s.replicas[0]
	select {
	case err := <-first.done:
		first.mu.Lock()
		first.running = false
		first.mu.Unlock()
		if err == nil || !strings.Contains(err.Error(), `instance id "r0"`) || !errors.Is(err, sarama.ErrFencedInstancedId) {
			t.Fatalf("fenced member's Run = %v; want ErrFencedInstancedId naming r0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the fenced member kept running")
	}
}
