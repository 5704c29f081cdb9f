package transform

import "github.com/settlekit/settle/pipeline"

// Len is the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Select returns the rule selectIndex chooses for o on d.
func (rs *Rules) Select(o pipeline.Order, d pipeline.Date) (Rule, error) {
	i, err := rs.selectIndex(o, d)
	if err != nil {
		return Rule{}, err
	}
	return rs.rules[i], nil
}
