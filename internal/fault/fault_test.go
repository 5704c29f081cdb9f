package fault

import (
	"testing"
	"time"
)

func TestSequenceAndProbabilityRules(t *testing.T) {
	in := New(1, Rule{Endpoint: "pay", Kind: Lost, Calls: []int{2, 4}}, Rule{Endpoint: "*", Kind: ServerError, Prob: 0.5})
	var got []Kind
	for i := 0; i < 4; i++ {
		got = append(got, in.Next("pay").Kind)
	}
	if got[1] != Lost || got[3] != Lost {
		t.Fatalf("calls 2 and 4 must be lost: %v", got)
	}
	// Same seed, same draws.
	a, b := New(9, Rule{Endpoint: "*", Kind: ServerError, Prob: 0.3}), New(9, Rule{Endpoint: "*", Kind: ServerError, Prob: 0.3})
	n := 0
	for i := 0; i < 1000; i++ {
		fa, fb := a.Next("x"), b.Next("x")
		if fa != fb {
			t.Fatal("same seed, different faults")
		}
		if fa.Kind == ServerError {
			n++
		}
	}
	if n < 200 || n > 400 {
		t.Fatalf("probability 0.3 played %d of 1000", n)
	}
	if a.Calls("x") != 1000 || a.Played(ServerError) != n {
		t.Fatal("counts")
	}
	var nilInj *Injector
	if nilInj.Next("x").Kind != None {
		t.Fatal("nil injector must play nothing")
	}
}

func TestParseRules(t *testing.T) {
	rules, err := ParseRules("revenue-sharing/request:lost@1+3; *:5xx~0.05\nupload:disconnect@2,bytes=4096\n# comment\nq:latency@1,delay=2s;s:stuck@1,polls=5")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 5 || rules[0].Endpoint != "revenue-sharing/request" || len(rules[0].Calls) != 2 || rules[1].Prob != 0.05 ||
		rules[2].Bytes != 4096 || rules[3].Delay != 2*time.Second || rules[4].Polls != 5 {
		t.Fatalf("%+v", rules)
	}
	for _, bad := range []string{"x", "x:lost", "x:nope@1", "x:lost@0", "x:5xx~2", "x:lost@1,color=red"} {
		if _, err := ParseRules(bad); err == nil {
			t.Errorf("ParseRules(%q) accepted", bad)
		}
	}
}
