package main

import (
	"slices"
	"testing"
)

func TestWithFixedStackStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		exec bool
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", "GODEBUG=adaptivestackstart=0"}, true},
		{"empty GODEBUG", []string{"GODEBUG=", "A=1"}, []string{"A=1", "GODEBUG=adaptivestackstart=0"}, true},
		{"other settings kept", []string{"GODEBUG=gctrace=1", "A=1"}, []string{"A=1", "GODEBUG=gctrace=1,adaptivestackstart=0"}, true},
		{"already off: no exec again", []string{"GODEBUG=gctrace=1,adaptivestackstart=0"}, []string{"GODEBUG=gctrace=1,adaptivestackstart=0"}, false},
		{"the operator's choice stands", []string{"GODEBUG=adaptivestackstart=1"}, []string{"GODEBUG=adaptivestackstart=1"}, false},
		{"a longer name is another setting", []string{"GODEBUG=xadaptivestackstart=1"}, []string{"GODEBUG=xadaptivestackstart=1,adaptivestackstart=0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, exec := withFixedStackStart(tc.in)
			if exec != tc.exec || !slices.Equal(got, tc.want) {
				t.Errorf("withFixedStackStart(%q) = %q, %v; want %q, %v", tc.in, got, exec, tc.want, tc.exec)
			}
		})
	}
}
