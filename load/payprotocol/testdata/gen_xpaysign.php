<?php
// Computes the X-PAY-SIGN vectors in xpaysign_vectors.json with the
// signature() function of Pay Protocol's official WooCommerce plugin,
// taken at run time from the plugin's own file (its code is not copied
// here). Usage (see README.md):
//
//   php gen_xpaysign.php path/to/class-wc-gateway-crypto.php > xpaysign_vectors.json
if ($argc != 2) {
    fwrite(STDERR, "usage: php gen_xpaysign.php class-wc-gateway-crypto.php\n");
    exit(2);
}
$src = file_get_contents($argv[1]);
if ($src === false) {
    exit(1);
}
// The plugin defines it as a static method of its WC_Payment_Gateway
// subclass; WordPress is not loaded here, so the method's text is taken
// out of the file and defined as a static method of a bare class.
if (!preg_match('/public static function signature\(.*?\n        \}\n/s', $src, $m)) {
    fwrite(STDERR, "signature() not found in " . $argv[1] . "\n");
    exit(1);
}
eval("class PluginSigner {\n" . $m[0] . "}\n");

$secret = 'ppsecret-test-0123456789abcdef';
$ts = 1723971200;
$cases = [
    ['detail, order and payment', $secret, $ts, 'GET', '/api/mer/payment/detail?outTradeNo=T-20250903-0001&outPaymentNo=PP000000000001', ''],
    ['detail, order only', $secret, $ts, 'GET', '/api/mer/payment/detail?outTradeNo=T-20250903-0001', ''],
    ['method in lower case', $secret, $ts, 'get', '/api/mer/payment/detail?outTradeNo=T-20250903-0001', ''],
    ['refund detail', $secret, $ts, 'GET', '/api/mer/refund/detail?outTradeNo=202401181646089709495&refundId=82', ''],
    ['payment notify', $secret, $ts, 'GET', '/api/mer/payment/notify?outTradeNo=T-20250903-0001', ''],
    ['refund notify', $secret, $ts, 'GET', '/api/mer/refund/notify?outTradeNo=T-20250903-0001&refundId=82', ''],
    ['percent-encoded query', $secret, $ts, 'GET', '/api/mer/payment/detail?outTradeNo=T%2F1+2', ''],
    ['refund order', $secret, $ts, 'POST', '/api/mer/refund/createRefundOrder', '{"outTradeNo":"T-20250903-0001","amount":"12.34"}'],
    ['payment order', $secret, $ts, 'POST', '/api/mer/payment/createPaymentOrder',
        '{"chainId":1,"description":"Order 42","outTradeNo":"T-42","isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"313.50","notifyUrl":"https://shop.example/hooks/pp"}'],
    ['body with non-ASCII', $secret, $ts, 'POST', '/api/mer/payment/createPaymentOrder',
        '{"chainId":1,"description":"订单 42 — café","outTradeNo":"T-43","isLegalTender":1,"quoteCurrencySymbol":"CNY","quoteAmount":"99","notifyUrl":"https://shop.example/hooks/pp"}'],
    ['POST, empty body', $secret, $ts, 'POST', '/api/mer/refund/createRefundOrder', ''],
    ['documented header example', 'F1R28pRQ-secret', 1684304935, 'GET', '/api/mer/conf/list/chain', ''],
    ['secret with symbols', 's3cr3t/+=&?%', 1700000000, 'POST', '/api/mer/refund/createRefundOrder', '{"outTradeNo":"T-1"}'],
];
$out = [];
foreach ($cases as [$name, $sec, $t, $method, $path, $body]) {
    $out[] = ['name' => $name, 'secret' => $sec, 'timestamp' => (string) $t, 'method' => $method,
        'requestPath' => $path, 'body' => $body, 'sign' => PluginSigner::signature($t, $method, $path, $body, $sec)];
}
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
