package seed

import "strconv"

// WeChatSubMchID is the WeChat Pay sub-merchant id of the seed's i-th
// seller when the sellers share subs sub-merchants (0: one each), as the
// seed's SQL writes it.
func WeChatSubMchID(i, subs int) string {
	if subs > 0 {
		i = (i-1)%subs + 1
	}
	return strconv.Itoa(1900000000 + i)
}
