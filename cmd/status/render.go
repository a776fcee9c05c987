package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wxterm/wxterm/internal/dedupe"
)

func writeJSON(w io.Writer, reports []report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(reports)
}

// writeTable prints each report as a block: the record's header lines,
// then one row per stored outcome, then the answer and WeChat's word.
func writeTable(w io.Writer, reports []report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		title := r.OutContractCode
		if r.RequestID != "" {
			title += "/" + r.RequestID
		}
		fmt.Fprintf(tw, "%s\n", title)
		switch {
		case r.Error != "":
			fmt.Fprintf(tw, "  error\t%s\n", r.Error)
			continue
		case r.State == stateAbsent:
			fmt.Fprintf(tw, "  state\tabsent (no record: never claimed, or expired)\n")
			continue
		}
		fmt.Fprintf(tw, "  state\t%s\n", r.State)
		switch {
		case r.LeaseUntil != nil:
			fmt.Fprintf(tw, "  lease\t%s\n", leaseText(r))
		case r.State == dedupe.StateInFlight:
			fmt.Fprintf(tw, "  lease\towner none (released): the next claim takes over and queries first\n")
		}
		fmt.Fprintf(tw, "  last request\t%s\n", r.LastRequestID)
		fmt.Fprintf(tw, "  attempts\t%d\n", r.Attempts)
		if r.TakenOver {
			fmt.Fprintf(tw, "  taken over\tyes: the last claim took over an expired or released one (it queried first)\n")
		}
		if r.UnknownRequestID != "" {
			fmt.Fprintf(tw, "  unknown mark\t%s: its call may have reached WeChat Pay; the next claim queries first\n", r.UnknownRequestID)
		}
		if r.TTLMs > 0 {
			fmt.Fprintf(tw, "  ttl\t%s\n", (time.Duration(r.TTLMs) * time.Millisecond).Round(time.Second))
		}
		if len(r.Outcomes) > 0 {
			fmt.Fprintf(tw, "  REQUEST\tKIND\tEVENT\tREASON\tPUBLISHED\tAT\n")
			for _, o := range r.Outcomes {
				ev := o.EventType
				if o.AlreadyTerminated {
					ev += " (already terminated)"
				}
				if o.Undecodable != "" {
					ev = "undecodable: " + o.Undecodable
				}
				at := ""
				if o.OccurredAt != nil {
					at = o.OccurredAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", o.RequestID, o.Kind, ev, dash(o.Reason), yesNo(o.Published), at)
			}
		}
		if r.RequestID != "" {
			fmt.Fprintf(tw, "  answer\t%s\n", answerText(r))
		}
		if l := r.WeChat; l != nil {
			if l.Error != "" {
				fmt.Fprintf(tw, "  wechat\t%s\n", l.Error)
				continue
			}
			state := l.State
			if l.TerminationMode != "" {
				state += " by " + l.TerminationMode
			}
			if l.TerminatedAt != nil {
				state += " at " + l.TerminatedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  wechat\t%s (%s, mchid %s)\n", state, l.API, l.MchID)
			fmt.Fprintf(tw, "  verdict\t%s: %s\n", l.Verdict, l.Why)
		}
	}
	return tw.Flush()
}

func leaseText(r report) string {
	left := time.Duration(r.LeaseLeftMs) * time.Millisecond
	until := r.LeaseUntil.Format(time.RFC3339)
	owner := r.Owner
	if owner == "" {
		owner = "none (released)"
	}
	switch {
	case r.LeaseLive:
		return fmt.Sprintf("owner %s, %s left (until %s)", owner, left.Round(time.Millisecond), until)
	case left > 0:
		return fmt.Sprintf("owner %s, until %s (not in flight)", owner, until)
	}
	return fmt.Sprintf("owner %s, expired %s ago (at %s)", owner, (-left).Round(time.Millisecond), until)
}

func answerText(r report) string {
	a := r.Answer
	switch {
	case a == nil && r.Found:
		return "none yet: the request is in flight"
	case a == nil:
		return "none: no outcome for this request and no termination"
	case a.Own:
		return fmt.Sprintf("its own outcome: %s %s, published %s", a.EventType, dash(a.Reason), yesNo(a.Published))
	}
	return fmt.Sprintf("already terminated, from %s's termination (%s), published %s", a.FromRequestID, a.EventType, yesNo(a.Published))
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
