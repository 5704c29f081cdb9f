package pipeline

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIdentifier is the most bytes an order number, a seller id, a
// provider transaction id or a refund number may have: more than any
// provider's field takes, and well under what an index entry of the
// ledger holds.
const MaxIdentifier = 128

// CheckIdentifier checks an identifier's value (empty passes: required says
// where it may not be): at most MaxIdentifier bytes of UTF-8 with no
// control character. Anything else is a corrupt key, which would go as it
// is into the providers' files and requests.
func CheckIdentifier(col, s string) error {
	if len(s) > MaxIdentifier {
		return fmt.Errorf("%s is %d bytes long, more than an identifier may have (%d)", col, len(s), MaxIdentifier)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			return identifierText(col, s) // not ASCII: rune by rune
		} else if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s contains the control character %U: %q", col, rune(c), s)
		}
	}
	return nil // ASCII without a control character, as nearly every key is
}

// identifierText is CheckIdentifier's check of a value that is not all ASCII.
func identifierText(col, s string) error {
	if err := CheckText(col, s); err != nil {
		return err
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains the control character %U: %q", col, r, s)
		}
	}
	return nil
}

// CheckText checks that s was read as UTF-8: the source scan turns bytes
// that are not into U+FFFD (pipeline.SourceScan), so a value holding it,
// or bytes that are not UTF-8, is a value the platform did not store as
// text. The reason is the same either way (a resumed run classifies the
// snapshot's U+FFFD).
func CheckText(col, s string) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
		return fmt.Errorf("%s is not valid UTF-8 (U+FFFD marks what was not): %q", col, strings.ToValidUTF8(s, "\uFFFD"))
	}
	return nil
}
