// Package sql embeds the SQL that settle ships: the job's own schema
// migrations (applied with goose by "settle migrate", "run" and "demo"), the
// reference platform schema used by demo, tests and benchmarks, and the
// default platform queries: the source query that reads one business day's
// orders, the sellers query and the late-refunds query.
//
// Importers usually name it settlesql to keep database/sql readable.
package sql

import "embed"

// Migrations holds the job's schema migrations under "migrations/", in goose's
// annotated-SQL format. They create unqualified tables: the ledger applies
// them with search_path set to the job's schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// PlatformSchema is the reference platform schema (sellers, orders, refunds).
// A real platform has its own; settle only reads it through the source,
// sellers and late-refunds queries.
//
//go:embed platform/schema.sql
var PlatformSchema string

// SourceQuery is the default extraction query: one row per order confirmed in
// [$1, $2) (both timestamptz), with the columns of DESIGN section 4.
//
//go:embed platform/source.sql
var SourceQuery string

// SellersQuery is the default sellers query: the sellers named by $1 (a
// text[]), with their provider identities.
//
//go:embed platform/sellers.sql
var SellersQuery string

// LateRefundsQuery is the default late-refunds query: the refunds recorded
// in [$1, $2) for orders confirmed before $1.
//
//go:embed platform/late_refunds.sql
var LateRefundsQuery string
