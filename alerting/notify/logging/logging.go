// Package logging is the receiver of last resort: it writes notifications to the log, so a
// Sluice without Slack or SMTP configured still shows every alert somewhere.
package logging

import (
	"context"
	"log/slog"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
)

// Notifier logs each alert of a notification at warn (firing) or info (resolved) level.
type Notifier struct {
	Logger *slog.Logger
}

// Notify implements notify.Notifier; it never fails.
func (n Notifier) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	rcv, _ := notify.ReceiverName(ctx)
	key, _ := notify.GroupKey(ctx)
	for _, a := range alerts {
		level, status := slog.LevelWarn, "firing"
		if a.Resolved() {
			level, status = slog.LevelInfo, "resolved"
		}
		n.Logger.Log(ctx, level, "alert notification", "receiver", rcv, "group", key, "status", status,
			"alertname", a.Name(), "labels", a.Labels.String(), "summary", string(a.Annotations["summary"]),
			"starts_at", a.StartsAt, "ends_at", a.EndsAt)
	}
	return notify.Success()
}

// SendResolved implements notify.ResolvedSender: resolutions are always logged.
func (Notifier) SendResolved() bool { return true }
