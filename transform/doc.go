// Package transform holds the pure functions of a settlement day: the
// commission rules file and the choice of rule for an order, the commission
// split of an order, the validation of a raw source row into an order or a
// reject, the check that an order can be paid to its seller's account
// (CheckSeller), and the rows of a trade file.
//
// Nothing here does I/O (beyond reading an io.Reader handed in by the
// caller), reads a clock or logs: every function's result depends only on its
// arguments, so the package is tested with tables, golden files and fuzzing.
//
// All amounts are int64 minor units of the order's currency (JPY 0 decimals,
// USD 2, KWD 3). No float touches money; every sum that could leave int64 is
// checked and reported as an error wrapping pipeline.ErrOverflow, never
// wrapped around.
package transform
