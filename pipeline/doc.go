// Package pipeline is the core of settle: the domain types (Money, Order,
// Split, Reject, Run, Window), the small interfaces the runner consumes, the
// Runner that sequences the stages of a settlement day (consecutive ones at
// once where a Pass does them in one stream), the intent-first protocol
// every side effect follows (with the rule for a request refused when sent
// again under its key, RefusedRepeat), the Engine that drives those
// effects at each provider's limits (Pacer: token buckets, requests in
// flight sized by rate x latency, pending effects polled in waves), the
// breaker that stops a stage's requests to a provider that answers none
// of several in a row (WithBreaker, Ask), and the error kinds that main
// maps to exit codes. It also holds the stages that name no provider: the
// extract and transform stages (ExtractStage, TransformStage, or one pass:
// ExtractTransform), the late refunds and clawbacks (ClawBackStage), the
// orders held for their sellers' accounts (SellerHoldStage) and the
// reconcile stage (ReconcileStageWatching).
//
// The core knows a channel by the ChannelSpec its provider's package
// declares, and a provider by the Provider it builds.
//
// It imports only the standard library. Adapters (extract, transform, load,
// the ledger and the provider clients) import it; only cmd wires them.
package pipeline
