package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// generation is one kafka-go generation's partitions and what holds it open
// while they drain on stop.
type generation struct {
	gen     *kafka.Generation
	stop    context.Context // Run's: done when the consumer stops
	pending sync.WaitGroup  // partitions not yet drained and committed
	drained chan struct{}   // closed once pending is zero
	release chan struct{}   // closed by leave: held routines return
}

// startGeneration starts a partition per assignment and the keeper that
// keeps the member alive while they drain.
func (c *Consumer) startGeneration(ctx context.Context, gen *kafka.Generation) *generation {
	n := 0
	for _, topic := range c.topics() {
		n += len(gen.Assignments[topic])
	}
	c.opts.Logger.Info("generation started", "generation", gen.ID, "member", gen.MemberID, "partitions", n)
	g := &generation{gen: gen, stop: ctx, drained: make(chan struct{}), release: make(chan struct{})}
	g.pending.Add(n)
	go func() { g.pending.Wait(); close(g.drained) }()
	commitMu := new(sync.Mutex) // see partition.commit
	for _, topic := range c.topics() {
		for _, pa := range gen.Assignments[topic] {
			p := c.newPartition(g, pa.ID, pa.Offset, commitMu)
			p.topic = topic
			gen.Start(p.run)
		}
	}
	gen.Start(func(genCtx context.Context) { c.keepAlive(g, genCtx) })
	return g
}

// hold keeps a stopping generation open until leave released it: in
// kafka-go a routine that returns ends the generation, which stops the
// heartbeats and lets the group rejoin before the member left.
func (g *generation) hold() {
	if g.stop.Err() != nil {
		<-g.release
	}
}

// keepAlive runs for the whole generation. Once kafka-go stops heartbeating
// (the generation ended: another member joined, or the coordinator moved)
// while partitions still drain, it heartbeats with the old generation until
// they are drained: without it a drain longer than the session timeout
// loses the membership, and with it the final commits.
func (c *Consumer) keepAlive(g *generation, genCtx context.Context) {
	select {
	case <-genCtx.Done():
		c.heartbeat(g)
	case <-g.stop.Done():
		select {
		case <-g.drained:
		case <-genCtx.Done():
			c.heartbeat(g)
		}
	}
	g.hold()
}

// heartbeat heartbeats g's member until g's partitions are drained or the
// coordinator no longer knows it. While the group prepares a rebalance the
// coordinator answers REBALANCE_IN_PROGRESS, keeps the member's session
// alive and accepts its commits with the old generation id.
func (c *Consumer) heartbeat(g *generation) {
	log := c.opts.Logger.With("generation", g.gen.ID)
	t := time.NewTicker(c.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-g.drained:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.SessionTimeout/2)
		res, err := c.client.Heartbeat(ctx, &kafka.HeartbeatRequest{
			GroupID: g.gen.GroupID, GenerationID: g.gen.ID, MemberID: g.gen.MemberID})
		cancel()
		if err == nil {
			err = res.Error
		}
		switch {
		case err == nil, errors.Is(err, kafka.RebalanceInProgress):
		case errors.Is(err, kafka.UnknownMemberId), errors.Is(err, kafka.IllegalGeneration):
			log.Warn("membership lost while draining; the final commits will be refused", "err", err)
			return
		default:
			log.Warn("heartbeat while draining", "err", err)
		}
	}
}

// leave waits until the last generation's partitions drained and made
// their final commits, leaves the group, then closes it. The member leaves
// with its own LeaveGroup before kafka-go may rejoin (which it does before
// leaving when the generation ended during the drain); kafka-go's rejoin,
// if any, then fails with UNKNOWN_MEMBER_ID and Close ends it.
func (c *Consumer) leave(group *kafka.ConsumerGroup, g *generation) {
	c.leaving.Store(true)
	if g != nil {
		<-g.drained
		c.leaveGroup(g.gen)
	}
	closed := make(chan struct{})
	go func() { _ = group.Close(); close(closed) }()
	if g != nil {
		close(g.release)
	}
	<-closed
}

// leaveGroup sends LeaveGroup for gen's member, so the partitions move to
// the other members at once instead of after a session timeout.
func (c *Consumer) leaveGroup(gen *kafka.Generation) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{
		GroupID: gen.GroupID, Members: []kafka.LeaveGroupRequestMember{{ID: gen.MemberID}}})
	if err == nil {
		err = res.Error
	}
	if err == nil {
		for _, m := range res.Members {
			err = errors.Join(err, m.Error)
		}
	}
	if err != nil && !errors.Is(err, kafka.UnknownMemberId) {
		c.opts.Logger.Warn("leave group", "member", gen.MemberID, "err", err)
		return
	}
	c.opts.Logger.Info("left the group", "generation", gen.ID, "member", gen.MemberID)
}
