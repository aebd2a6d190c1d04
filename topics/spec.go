package topics

import "time"

// Spec describes how a topic is created. A negative Retention keeps records forever.
type Spec struct {
	Name      string
	Compacted bool
	Retention time.Duration
	// Partitions fixes the partition count; 0 means the pipeline's (topics that must be copartitioned).
	Partitions int
}

// Specs lists the topics of the pipeline with their settings; names of goka's group tables and loops come from
// the processors, which know their groups.
func Specs(groupTables, loops []string) []Spec {
	specs := []Spec{
		{Name: string(Payments), Retention: 7 * 24 * time.Hour},
		{Name: string(PaymentsDLQ), Retention: 30 * 24 * time.Hour},
		{Name: string(Alerts), Retention: 7 * 24 * time.Hour},
		{Name: string(AlertsDLQ), Retention: 30 * 24 * time.Hour},
		{Name: Decisions, Retention: 7 * 24 * time.Hour},
		{Name: string(Customers), Compacted: true, Retention: -1},
		{Name: string(NotificationsDLQ), Retention: 30 * 24 * time.Hour},
		{Name: CustomerAnswers, Retention: 30 * 24 * time.Hour},
		{Name: CustomerAnswersDLQ, Retention: 30 * 24 * time.Hour},
		{Name: PaymentActions, Retention: 30 * 24 * time.Hour},
		{Name: Labels, Compacted: true, Retention: -1},
		{Name: SMSConfirmations, Compacted: true, Retention: -1},
		{Name: Cases, Compacted: true, Retention: -1},
		{Name: CaseCommands, Retention: 30 * 24 * time.Hour},
		{Name: CasesDLQ, Retention: 30 * 24 * time.Hour},
		// One partition each: every detector reads all of them, and their order is the order of versions.
		{Name: Rules, Compacted: true, Retention: -1, Partitions: 1},
		{Name: Lists, Compacted: true, Retention: -1, Partitions: 1},
		{Name: Settings, Retention: -1, Partitions: 1},
	}
	for _, t := range groupTables {
		specs = append(specs, Spec{Name: t, Compacted: true, Retention: -1})
	}
	for _, t := range loops {
		specs = append(specs, Spec{Name: t, Retention: 24 * time.Hour})
	}
	return specs
}
