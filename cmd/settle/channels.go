package main

import (
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// knownChannel is a payment channel settle knows: the spec the package of
// its provider declares, and how the provider that settles it is
// configured.
type knownChannel struct {
	spec pipeline.ChannelSpec
	// flag names what configures the provider that settles the channel,
	// for the message when its orders wait for one.
	flag string
	// configured reports whether a run's options configure that provider
	// (a dry run builds none to ask).
	configured func(o *runOptions) bool
}

// knownChannels lists every channel settle knows, in the order messages
// list them: the one place the core learns of them. A further provider
// adds a line for each channel it settles.
func knownChannels() []knownChannel {
	return []knownChannel{
		{infiniapay.ChannelSpec(), "--" + flagInfiniaURL, func(o *runOptions) bool { return o.infinia != nil }},
		// Infinia pays Pay Protocol's orders, which Pay Protocol verifies.
		{payProtocolSpec(), "--" + flagPPURL + " (with --" + flagInfiniaURL + ")",
			func(o *runOptions) bool { return o.infinia != nil && o.payProtocol != nil }},
		{wechatpay.ChannelSpec(), "--" + flagWXURL, func(o *runOptions) bool { return o.wechat != nil }},
	}
}

// payProtocolSpec is Pay Protocol's channel, its sellers' accounts (at
// Infinia, which pays its orders) checked by Infinia's rule: a provider
// package imports no other, cmd wires them.
func payProtocolSpec() pipeline.ChannelSpec {
	s := payprotocol.ChannelSpec()
	s.CheckAccount = infiniapay.CheckSellerID
	return s
}

// channelSpecs are the specs of the known channels: what validation, the
// seller check and the clawbacks are given.
func channelSpecs() pipeline.Channels {
	known := knownChannels()
	out := make(pipeline.Channels, len(known))
	for i, k := range known {
		out[i] = k.spec
	}
	return out
}

// channelFlag names what configures the provider of channel ch.
func channelFlag(ch pipeline.Channel) string {
	for _, k := range knownChannels() {
		if k.spec.Channel == ch {
			return k.flag
		}
	}
	return "no provider of settle settles it"
}

// configured reports which channels have a provider configured, for a dry
// run (which builds no provider).
func (o *runOptions) configured() map[pipeline.Channel]bool {
	out := map[pipeline.Channel]bool{}
	for _, k := range knownChannels() {
		out[k.spec.Channel] = k.configured(o)
	}
	return out
}
