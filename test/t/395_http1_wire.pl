# HTTP/1.1 on the wire: what a webhook sender must do whatever does its
# framing (docs/guarantees.md §5, §8), to a plain http:// receiver and to
# an https:// one with cocohooks.http2 = off (the worker's own HTTP/1.1
# over the TLS connection libcurl made), every case run on both; at the
# end, with the default cocohooks.http2 = tls, the first connection that
# asks by ALPN becoming the worker's own.  The
# receivers are test/raw_receiver.mjs, on raw TCP or on TLS offering only
# HTTP/1.1, which write exactly the bytes each case calls for and record
# every request's raw header lines, exact body bytes, connection and place
# on it.
#
# The request: POST to the URL's path and query, Host with the port,
# Content-Length and no Transfer-Encoding or Expect, Content-Type, a
# User-Agent of cocohooks, the webhook-* headers with a signature over the
# exact body bytes, the hook's own headers; one request at a time on a
# connection, never pipelined.  The answers: Content-Length, chunked (with
# extensions and trailers), close-delimited, HTTP/1.0, 1xx before the final
# answer, an answer in pieces, many headers, odd case and spacing, an
# empty reason phrase, 204 without a length, an answer before the body was
# read; what is not an answer (garbage, cut short, too late) fails the
# attempt and is retried.  Kept-alive connections: reused in sequence,
# never after Connection: close, an HTTP/1.0 answer, bytes past an answer
# or a timeout; after a body not read to its end the next delivery still
# gets its own answer; one that died while idle (or as it was reused,
# closed or reset) costs no failed attempt.  Retry-After in seconds and as
# an HTTP-date.  One connection per receiver (max_host_connections = 1),
# so the order on the wire is the order of the deliveries.
#
# Over TLS besides: TLS 1.2 or later, HTTP/1.1 by ALPN, every handshake
# completed, new connections resuming the TLS session; a receiver whose certificate is not trusted gets no request
# at any attempt, and nothing in clear; a kept-alive TLS connection serves
# sequential deliveries with one handshake.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA qw(hmac_sha256_base64);
use MIME::Base64 qw(decode_base64 encode_base64);
use JSON::PP;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $dir = PostgreSQL::Test::Utils::tempdir('h1tls');
make_test_ca($dir, 'ca');
make_test_ca($dir, 'otherca');
make_test_cert($dir, 'server', 'ca', 'DNS:localhost,IP:127.0.0.1');
make_test_cert($dir, 'untrusted', 'otherca', 'DNS:localhost,IP:127.0.0.1');

my $plain = start_receiver(raw => 1);
my $secure = start_receiver(raw => 1, tls_cert => "$dir/server.pem", tls_key => "$dir/server.key");
like($plain->{url}, qr{^http://127\.0\.0\.1:\d+$}, 'a raw HTTP/1.1 receiver on loopback');
like($secure->{url}, qr{^https://localhost:\d+$}, 'a raw HTTP/1.1 receiver over TLS on loopback');

# UTF8, so that non-ASCII text reaches the body as such; http2 = off: the
# https receivers get the worker's own HTTP/1.1 (http:// ones do anyway)
my $node = PostgreSQL::Test::Cluster->new('http1_wire');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', qq{
max_connections = 30
wal_level = replica
max_wal_senders = 0
shared_preload_libraries = 'cocohooks'
cocohooks.allowed_networks = '127.0.0.0/8, ::1'
cocohooks.max_host_connections = 1
cocohooks.log_deliveries = all
cocohooks.log_failures_every = 0
cocohooks.http2 = off
cocohooks.ca_file = '$dir/ca.pem'
});
$node->start;
create_extension($node);
is($node->safe_psql('postgres', 'SHOW cocohooks.http2'), 'off', 'cocohooks.http2 = off');

my $secret_key = join '', map { chr(int(rand(256))) } 1 .. 32;
my $secret = 'whsec_' . encode_base64($secret_key, '');

# The run's receiver, its URL, and its name ("http" or "https"), which
# begins the name of every check of the run (n).
my ($recv, $url, $run);

sub n
{
	my ($name) = @_;
	return "$run: $name";
}

my $ntable = 0;

# A hook on a new table to $path; unless raw_path, the path gets a query
# parameter c=<table> of its own, so that its records are told apart.  It
# is created with the first SQL run for it (run_for): one psql a step.
sub hook
{
	my ($path, %o) = @_;
	my $t = 't' . ++$ntable;
	my $raw = delete $o{raw_path};
	my $full = $raw ? $path : $path . ($path =~ /\?/ ? '&' : '?') . "c=$t";
	my $extra = join '', map { ", $_ => $o{$_}" } sort keys %o;
	return {
		table => $t,
		path => $full,
		pending => "CREATE TABLE $t (id int PRIMARY KEY, v text);\n"
		  . "SELECT cocohooks.register_hook('$t', 'post_save', '$url$full'$extra);\n",
	};
}

# Runs $sql, after creating the hook if it is not yet; its output lines.
sub run_for
{
	my ($h, $sql) = @_;
	my $pending = delete $h->{pending};
	my @lines = split /\n/, $node->safe_psql('postgres', ($pending // '') . $sql);
	$h->{id} = shift @lines if defined $pending;
	return @lines;
}

# Inserts rows 1..$n into the hook's table (or runs $insert), in an API
# session; with $wait, waits for the deliveries: true if they finished.
sub fire
{
	my ($h, $n, $insert, $wait) = @_;
	$insert //= "INSERT INTO $h->{table} SELECT g, 'x' FROM generate_series(1, " . ($n // 1) . ') g';
	my @out = run_for($h, "SET cocohooks.api_session = on;\n$insert;\nRESET cocohooks.api_session;\n"
		  . ($wait ? "SELECT cocohooks.wait_for_deliveries('30 s');\n" : ''));
	return $wait && @out && $out[-1] eq 't';
}

# The hook's rows in cocohooks.deliveries, oldest first.
sub rows
{
	my ($h) = @_;
	my $out = join "\n", run_for($h, qq{
		SELECT webhook_id, success, coalesce(status_code::text, ''), attempts,
		       coalesce(error, ''), coalesce(response, '<null>')
		  FROM cocohooks.deliveries WHERE hook_id = $h->{id} ORDER BY id});
	return [
		map {
			my @f = split /\|/, $_, 6;
			{
				webhook_id => $f[0],
				success => $f[1],
				status => $f[2],
				attempts => $f[3],
				error => $f[4],
				response => $f[5],
			}
		} split /\n/, $out
	];
}

# "success status attempts response" of the hook's only delivery.
sub outcome
{
	my ($h) = @_;
	my $r = rows($h);
	return 'rows: ' . scalar(@$r) unless @$r == 1;
	return join ' ', map { $r->[0]{$_} } qw(success status attempts response);
}

# The run's receiver's requests (not its failed handshakes), those
# $filter accepts.
sub requests
{
	my ($filter) = @_;
	return records($recv, sub { defined $_[0]{path} && (!$filter || $filter->($_[0])) });
}

sub recs
{
	my ($h) = @_;
	return requests(sub { $_[0]{path} eq $h->{path} });
}

# The hook's event delivered: the wait bounded.
sub deliver
{
	my ($h, $what, $n, $insert) = @_;
	ok(fire($h, $n, $insert, 1), n("$what: finished"));
	return;
}

sub pattern
{
	my ($n) = @_;
	return substr('0123456789' x (int($n / 10) + 1), 0, $n);
}

my $follow = 0;

# After a case: a delivery to /ok right after it.  Whether it went on the
# case's connection (the case's answer left it fit for reuse) or a new one
# is checked with $reuse (undef: either), and that it succeeded at its
# first attempt with a single request.
sub then_ok
{
	my ($case_h, $what, $reuse) = @_;
	my $h = hook('/ok');
	deliver($h, "$what, then /ok");
	is(outcome($h), 't 200 1 ok', n("$what: the next delivery succeeds at its first attempt"));
	# (a request sent as the receiver closed the connection unannounced
	# is dropped, and sent again: /drop-next checks that)
	my $r = [ grep { !$_->{dropped} } @{ recs($h) } ];
	my $c = recs($case_h);
	is(scalar(@$r), 1, n("$what: the next delivery answered once"));
	if (defined $reuse && @$r && @$c)
	{
		if ($reuse)
		{
			is("$r->[0]{connection}/$r->[0]{request}",
				"$c->[-1]{connection}/" . ($c->[-1]{request} + 1),
				n("$what: the connection kept alive and reused"));
		}
		else
		{
			isnt($r->[0]{connection}, $c->[-1]{connection}, n("$what: on a new connection"));
		}
	}
	return $r;
}

# The cases, on $receiver, as the run $name.
sub run_cases
{
	my ($receiver, $name) = @_;
	$recv = $receiver;
	$url = $recv->{url};
	$run = $name;
	my ($hostport) = $url =~ m{^https?://([^/]+)$};

	my $before = stats($node);

	# --- 1. the request on the wire
	my $wire = hook('/wire/a%20b?x=1&y=two', raw_path => 1,
		headers => q{'{"X-Custom": "custom value", "Authorization": "Bearer t0k3n", "X-Empty": ""}'},
		secret => "'$secret'");
	my $text = qq{h\x{e9}llo \x{2713} "quoted" \\ back};
	my $sql_text = $text;
	utf8::encode($sql_text);
	deliver($wire, 'the wire case', 1, "INSERT INTO $wire->{table} VALUES (7, \$v\$$sql_text\$v\$)");
	is(outcome($wire), 't 200 1 ok', n('delivered at the first attempt'));
	my $r = recs($wire);
	is(scalar(@$r), 1, n('one request'));
	my $req = $r->[0] // { headers => {}, header_lines => [], header_counts => {}, body_b64 => '' };
	my $h = $req->{headers};
	my $body = decode_base64($req->{body_b64});
	is($req->{method}, 'POST', n('POST'));
	is($req->{version}, 'HTTP/1.1', n('HTTP/1.1'));
	is($req->{path}, '/wire/a%20b?x=1&y=two', n('the request target is the URL\'s path and query, as written'));
	is($h->{host}, $hostport, n('Host: the URL\'s host and port'));
	is($h->{'content-length'}, length($body), n('Content-Length: the body\'s length in bytes'));
	ok(!exists $h->{'transfer-encoding'}, n('no Transfer-Encoding'));
	ok(!exists $h->{expect}, n('no Expect'));
	is($h->{'content-type'}, 'application/json', n('Content-Type: application/json'));
	like($h->{'user-agent'}, qr{^cocohooks/\S+$}, n("User-Agent: cocohooks/<version> ($h->{'user-agent'})"));
	is($h->{'x-hook-event'}, 'post_save', n('X-Hook-Event'));
	is($h->{'webhook-id'}, rows($wire)->[0]{webhook_id}, n('webhook-id: the delivery\'s'));
	cmp_ok(abs(($h->{'webhook-timestamp'} // 0) - time()), '<', 60, n('webhook-timestamp: now'));
	my $sig = hmac_sha256_base64(($h->{'webhook-id'} // '') . '.' . ($h->{'webhook-timestamp'} // '') . '.' . $body,
		$secret_key);
	$sig .= '=' while length($sig) % 4;
	is($h->{'webhook-signature'}, "v1,$sig", n('webhook-signature: over the exact body bytes received'));
	is($h->{'x-custom'}, 'custom value', n('the hook\'s own header'));
	is($h->{authorization}, 'Bearer t0k3n', n('the hook\'s own header (Authorization)'));
	is(scalar(grep { $_ eq 'X-Empty:' } @{ $req->{header_lines} }), 1, n('the hook\'s own header with an empty value: "X-Empty:"'));
	my $doc = eval { decode_json($body) } // {};
	is($doc->{document}{v}, $text, n('the body: the row, non-ASCII text in UTF-8'));
	is($doc->{document_id}, '7', n('the body: its document id'));
	is(scalar(grep { $_ > 1 } values %{ $req->{header_counts} }), 0, n('no header sent twice'));
	is(scalar(grep { !/^[!#\$%&'*+.^_`|~0-9A-Za-z-]+:(?: \S(?:[^\r\n]*\S)?)?$/ } @{ $req->{header_lines} }), 0,
		n('every header line is "Name: value" (or "Name:", the value empty)'));
	is(scalar(grep { /^[^:]+;/ } @{ $req->{header_lines} }), 0, n('no "Name;" line (libcurl\'s notation for an empty value)'));

	# a URL without a path asks for /, and one with a query alone for /?query
	my $bare = hook('', raw_path => 1);
	my $qonly = hook('?only=query', raw_path => 1);
	fire($bare);
	fire($qonly);
	ok(wait_deliveries($node), n('URLs without a path: finished'));
	is(outcome($bare), 't 200 1 ok', n('a URL without a path: delivered'));
	is(outcome($qonly), 't 200 1 ok', n('a URL with a query and no path: delivered'));
	my %paths = map { $_->{path} => 1 } @{ requests(sub { $_[0]{path} =~ m{^/(\?|$)} }) };
	is(join(' ', sort keys %paths), '/ /?only=query', n('the request targets: / and /?only=query'));

	# --- 2. deliveries in sequence reuse one kept-alive connection
	my $seq = hook('/ok');
	deliver($seq, 'six in sequence', 6);
	my $seq_rows = rows($seq);
	is(scalar(grep { $_->{success} eq 't' && $_->{attempts} == 1 && $_->{response} eq 'ok' } @$seq_rows),
		6, n('six delivered at their first attempt, each with its answer'));
	$r = recs($seq);
	is(scalar(@$r), 6, n('six requests'));
	is(scalar(keys %{ { map { $_->{connection} => 1 } @$r } }), 1, n('all on one connection'));
	is(join(',', map { $_->{request} - $r->[0]{request} } @$r), '0,1,2,3,4,5', n('one after the other on it'));

	# --- 3. answers that keep the connection: each read whole, the next request on the same connection
	for my $case (
		[ '/chunked/3000', 't 200 1 ' . pattern(1024), 'chunked, with a chunk extension and a trailer: decoded, first 1 kB kept' ],
		[ '/chunked/0', 't 200 1 ', 'chunked, empty' ],
		[ '/interim', 't 200 1 final', 'two 103 Early Hints, then 200: the final answer counts' ],
		[ '/continue', 't 200 1 final', 'an unasked-for 100 Continue, then 200' ],
		[ '/split', 't 200 1 split-reply', 'an answer written a byte or three at a time' ],
		[ '/many-headers', 't 200 1 many', '40 kB of header lines' ],
		[ '/mixed-case', 't 200 1 mixed!', 'header names in odd case, spaces around a value, an empty value' ],
		[ '/noreason', 't 200 1 noreason', 'an empty reason phrase' ],
		[ '/204', 't 204 1 ', '204 without Content-Length' ],
		[ '/status/202', 't 202 1 {"status": 202}', '202 Accepted' ])
	{
		my ($path, $want, $what) = @$case;
		my $hk = hook($path);
		deliver($hk, $what);
		is(outcome($hk), $want, n("$what: success, status, attempts, response"));
		is(scalar(@{ recs($hk) }), 1, n("$what: one request"));
		then_ok($hk, $what, 1);
	}

	# failed answers that still keep the connection: no retry, the status and body logged
	for my $case (
		[ '/status/500', 'f 500 1 {"status": 500}', 'receiver answered with HTTP status 500', '500' ],
		[ '/status/404', 'f 404 1 {"status": 404}', 'receiver answered with HTTP status 404', '404' ],
		[ '/redirect', 'f 302 1 ', 'receiver answered with HTTP status 302', '302: not followed' ])
	{
		my ($path, $want, $error, $what) = @$case;
		my $hk = hook($path, max_retries => 0);
		deliver($hk, $what);
		is(outcome($hk), $want, n("$what: failed, status, attempts, response"));
		is(rows($hk)->[0]{error}, $error, n("$what: the error"));
		then_ok($hk, $what, 1);
	}
	is(scalar(@{ requests(sub { $_[0]{path} =~ /redirected/ }) }), 0, n('the redirect was not followed'));

	# --- 4. answers that end the connection: the next request on a new one
	for my $case (
		[ '/close', 't 200 1 ok', 'Connection: close' ],
		[ '/close-delimited/50', 't 200 1 ' . pattern(50), 'a body delimited by the connection\'s close' ],
		[ '/http10', 't 200 1 http10-body', 'HTTP/1.0 without Content-Length' ],
		[ '/drop', 't 200 1 ok', 'a kept-alive answer, then the connection closed at once' ])
	{
		my ($path, $want, $what) = @$case;
		my $hk = hook($path);
		deliver($hk, $what);
		is(outcome($hk), $want, n("$what: success, status, attempts, response"));
		then_ok($hk, $what, 0);
	}

	# Connection: close, the connection left open for 500 ms: nothing more sent on it
	my $late_close = hook('/close-late');
	deliver($late_close, 'Connection: close, closed 500 ms later');
	is(outcome($late_close), 't 200 1 ok', n('Connection: close, closed later: delivered'));
	then_ok($late_close, 'Connection: close, closed later', 0);
	usleep(600_000);

	# bytes past the answer's Content-Length are nobody's answer
	my $excess = hook('/excess');
	deliver($excess, 'bytes past the answer');
	is(outcome($excess), 't 200 1 ok', n('bytes past the answer: the answer counts'));
	then_ok($excess, 'bytes past the answer (a 500 to no request)', 0);

	# a body larger than the sender reads: 1 kB kept, reading stopped at 64 kB
	my $big = hook('/body/200000');
	deliver($big, 'a 200 kB answer');
	is(outcome($big), 't 200 1 ' . pattern(1024), n('a 200 kB answer: success, its first 1 kB kept'));
	then_ok($big, 'a 200 kB answer');

	# a connection the receiver closed while idle (its keep-alive timeout)
	my $s0 = stats($node);
	my $idle = hook('/idle-close/300');
	deliver($idle, 'a connection closed after 300 ms idle');
	is(outcome($idle), 't 200 1 ok', n('idle-close: delivered'));
	usleep(1_000_000);
	then_ok($idle, 'after the receiver closed the idle connection', 0);

	# a kept-alive connection that dies as it is reused (closed, or reset):
	# the request that hit it is sent again on a new connection, no failed
	# attempt counted
	for my $case ([ '/drop-next', 'closed' ], [ '/reset-next', 'reset' ])
	{
		my ($path, $how) = @$case;
		my $dn = hook($path);
		deliver($dn, "$path");
		is(outcome($dn), 't 200 1 ok', n("$path: delivered"));
		my $next = hook('/ok');
		deliver($next, "the request that meets the $how connection");
		is(outcome($next), 't 200 1 ok', n("$how as it was reused: sent again, success at the first attempt"));
		$r = recs($next);
		is(join(' ', map { $_->{dropped} ? 'dropped' : 'answered' } @$r), 'dropped answered',
			n("$how as it was reused: the receiver saw it dropped, then answered it"));
		if (@$r == 2)
		{
			is($r->[0]{connection}, recs($dn)->[0]{connection}, n("$how: the dropped one went on the kept-alive connection"));
			isnt($r->[1]{connection}, $r->[0]{connection}, n("$how: the answered one on a new connection"));
			is($r->[1]{headers}{'webhook-id'}, $r->[0]{headers}{'webhook-id'}, n("$how: the same webhook-id"));
			is($r->[1]{body_b64}, $r->[0]{body_b64}, n("$how: the same body"));
		}
	}
	my $s1 = stats($node);
	is($s1->{failed} - $s0->{failed}, 0, n('dead kept-alive connections: no failure counted'));
	is($s1->{retried} - $s0->{retried}, 0, n('dead kept-alive connections: no retry counted'));

	# --- 5. no answer: the attempt fails
	for my $case (
		[ '/garbage', 'not HTTP' ],
		[ '/short', 'a body cut short (10 of 100 bytes)' ])
	{
		my ($path, $what) = @$case;
		my $hk = hook($path, max_retries => 0);
		deliver($hk, $what);
		my $row = rows($hk)->[0] // {};
		is(join(' ', map { $row->{$_} // '' } qw(success status attempts)), 'f  1',
			n("$what: failed, no status, one attempt"));
		isnt($row->{error} // '', '', n("$what: an error ($row->{error})"));
		then_ok($hk, $what);
	}
	my $late = hook('/late/1500', max_retries => 0, timeout_ms => 500);
	deliver($late, 'an answer after 1.5 s, timeout 500 ms');
	my $late_row = rows($late)->[0] // {};
	is(join(' ', map { $late_row->{$_} // '' } qw(success status attempts)), 'f  1',
		n('too late: failed, no status, one attempt'));
	like($late_row->{error} // '', qr/time/i, n("too late: a timeout ($late_row->{error})"));
	then_ok($late, 'after a timeout', 0);
	usleep(1_200_000);    # the late answer is written to no one

	# ... and is retried: once the receiver answers, delivered once
	my @once = (
		[ hook('/garbage?once', max_retries => 2), 'not HTTP, then 200' ],
		[ hook('/short?once', max_retries => 2), 'cut short, then 200' ],
		[ hook('/late/1500?once', max_retries => 2, timeout_ms => 500), 'too late, then 200' ],
		[ hook('/status/503?once', max_retries => 2), '503, then 200' ]);
	fire($_->[0]) for @once;
	ok(wait_deliveries($node, '60 s'), n('failing first attempts: finished'));
	for my $o (@once)
	{
		my ($hk, $what) = @$o;
		is(outcome($hk), 't 200 2 ok', n("$what: delivered at the second attempt"));
		$r = recs($hk);
		is(scalar(@$r), 2, n("$what: two requests"));
		is(scalar(keys %{ by_webhook_id($r) }), 1, n("$what: with the same webhook-id"));
	}

	# --- 6. Retry-After, in seconds and as an HTTP-date
	my $ra = hook('/status/503?retry_after=3', max_retries => 1);
	my $rd = hook('/status/429?retry_date=3', max_retries => 1);
	fire($ra);
	fire($rd);
	ok(wait_deliveries($node, '60 s'), n('Retry-After: finished'));
	for my $case ([ $ra, 'Retry-After: 3', 2.9, 4.5 ], [ $rd, 'Retry-After: <3 s from now, as an HTTP-date>', 2.9, 5.5 ])
	{
		my ($hk, $what, $lo, $hi) = @$case;
		is(outcome($hk), 'f ' . ($hk == $ra ? 503 : 429) . ' 2 {"status": ' . ($hk == $ra ? 503 : 429) . '}',
			n("$what: failed after two attempts"));
		$r = recs($hk);
		my $gap = @$r == 2 ? $r->[1]{received_at} - $r->[0]{received_at} : -1;
		note(sprintf('%s: retried %.3f s after the first attempt', $what, $gap));
		cmp_ok($gap, '>=', $lo, n("$what: the retry waited for it ($lo s at least)"));
		cmp_ok($gap, '<', $hi, n("$what: and not much longer"));
	}

	# --- 7. an answer before the body is read: 200 stands, the body still sent whole
	my $early_small = hook('/early', secret => "'$secret'");
	my $early_big = hook('/early', secret => "'$secret'");
	deliver($early_small, 'an early answer to a small body');
	deliver($early_big, 'an early answer to a 500 kB body', 1,
		"INSERT INTO $early_big->{table} VALUES (1, repeat('y', 500000))");
	is(outcome($early_small), 't 200 1 early', n('an early answer to a small body: success'));
	is(outcome($early_big), 't 200 1 early', n('an early answer to a 500 kB body: success'));
	$r = wait_records($recv, 2, 10, sub { $_[0]{early} });
	is(scalar(@$r), 2, n('both requests read whole after the answer'));
	if (@$r == 2)
	{
		my $bigrec = $r->[1];
		is($bigrec->{body_complete_at_answer}, JSON::PP::false, n('the 500 kB one was answered before its body came'));
		cmp_ok($bigrec->{body_length}, '>', 500000, n('its body came whole'));
		is($bigrec->{headers}{'content-length'}, $bigrec->{body_length}, n('as long as its Content-Length'));
		my $b = decode_base64($bigrec->{body_b64});
		my $s = hmac_sha256_base64("$bigrec->{headers}{'webhook-id'}.$bigrec->{headers}{'webhook-timestamp'}.$b",
			$secret_key);
		$s .= '=' while length($s) % 4;
		is($bigrec->{headers}{'webhook-signature'}, "v1,$s", n('its signature matches its bytes'));
		is((eval { decode_json($b) } // {})->{document}{v}, 'y' x 500000, n('its body is the row'));
	}
	then_ok($early_big, 'after an early answer');

	# --- 8. every request on the wire, whatever its case
	my $all = requests();
	note(scalar(@$all) . ' requests recorded');
	is(scalar(grep { $_->{method} ne 'POST' || $_->{version} ne 'HTTP/1.1' } @$all), 0, n('all: POST, HTTP/1.1'));
	is(scalar(grep { ($_->{headers}{host} // '') ne $hostport } @$all), 0, n('all: Host with the port'));
	is(scalar(grep { ($_->{headers}{'content-length'} // -1) ne $_->{body_length} } @$all), 0,
		n('all: Content-Length, the body\'s length'));
	is(scalar(grep { exists $_->{headers}{'transfer-encoding'} || $_->{chunked} } @$all), 0, n('all: no Transfer-Encoding'));
	is(scalar(grep { exists $_->{headers}{expect} } @$all), 0, n('all: no Expect'));
	is(scalar(grep { $_->{pipelined} } @$all), 0, n('all: one at a time, none pipelined'));
	is(scalar(grep { $_->{bare_lf} } @$all), 0, n('all: lines ended by CRLF'));
	is(scalar(grep { $_->{after_close} } @$all), 0,
		n('all: none sent on a connection after an answer that ended it (Connection: close, HTTP/1.0)'));
	is(scalar(grep { my $c = $_->{header_counts}; grep { $_ > 1 } values %$c } @$all), 0, n('all: no header twice'));
	is(scalar(grep { !eval { decode_json(decode_base64($_->{body_b64})); 1 } } @$all), 0,
		n('all: a JSON body'));

	if ($run eq 'https')
	{
		is(scalar(grep { ($_->{tls}{version} // '') !~ /^TLSv1\.[23]$/ } @$all), 0, n('all: over TLS 1.2 or later'));
		is(scalar(grep { ($_->{tls}{alpn} // '') ne 'http/1.1' } @$all), 0, n('all: HTTP/1.1 agreed by ALPN'));
		my $failed = records($recv, sub { defined $_[0]{tls_error} });
		is(join(', ', map { $_->{tls_error} } @$failed), '', n('every TLS handshake completed'));
		# new connections resume the TLS session from the shared cache:
		# with this receiver (Node.js) one that resumed is followed by a
		# full handshake, libcurl's own transfers alike, hence every other
		my %first;
		$first{ $_->{connection} } //= $_ for @$all;
		my @conns = map { $first{$_} } sort { $a <=> $b } keys %first;
		my $resumed = grep { $_->{tls}{session_reused} } @conns;
		note(sprintf('%d TLS connections, %d of them resumed a session: %s', scalar(@conns), $resumed,
			join('', map { $_->{tls}{session_reused} ? 'R' : 'F' } @conns)));
		cmp_ok($resumed, '>=', int(@conns / 2), n('new connections resume the TLS session'));
	}

	my $after = stats($node);
	is($after->{dropped} - $before->{dropped}, 0, n('nothing dropped'));
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.retry_queue'), '0', n('nothing left to retry'));
	return;
}

run_cases($plain, 'http');
run_cases($secure, 'https');

# --- TLS alone
$run = 'https';

# A receiver whose certificate no trusted CA signed: every attempt fails at
# the handshake, with the certificate error, and the receiver gets no
# request, neither in TLS nor in clear (a request in clear would fail its
# handshake as ERR_SSL_HTTP_REQUEST): each handshake ends with the
# sender's unknown_ca alert.
my $untrusted = start_receiver(raw => 1, tls_cert => "$dir/untrusted.pem", tls_key => "$dir/untrusted.key");
$recv = $untrusted;
$url = $untrusted->{url};
my $ut = hook('/ok', max_retries => 1);
ok(fire($ut, 2, undef, 1), n('an untrusted certificate: finished'));
my $ut_rows = rows($ut);
is(join(', ', map { join ' ', @$_{qw(success status attempts)} } @$ut_rows), 'f  2, f  2',
	n('an untrusted certificate: both deliveries failed, no status, two attempts each'));
is(scalar(grep { $_->{error} =~ /^SSL certificate problem: unable to get local issuer certificate/ } @$ut_rows), 2,
	n('an untrusted certificate: the error names it (' . ($ut_rows->[0]{error} // '') . ')'));
is(scalar(@{ requests() }), 0, n('an untrusted certificate: no request reached the receiver'));
my $handshakes = records($untrusted, sub { defined $_[0]{tls_error} });
is(join(' ', map { $_->{tls_error} } @$handshakes), join(' ', ('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA') x 4),
	n('an untrusted certificate: a handshake per attempt, each ended by the sender at the certificate, nothing in clear'));

# A kept-alive TLS connection serves deliveries one after the other, each
# committed and waited for on its own, with a pause between them: one
# connection, one full handshake.
my $fresh = start_receiver(raw => 1, tls_cert => "$dir/server.pem", tls_key => "$dir/server.key");
$recv = $fresh;
$url = $fresh->{url};
my $ka = hook('/ok');
for my $i (1 .. 4)
{
	deliver($ka, "kept alive, delivery $i", 1, "INSERT INTO $ka->{table} VALUES ($i, 'x')");
	usleep(200_000);
}
is(join(' ', map { "$_->{success}$_->{attempts}" } @{ rows($ka) }), 't1 t1 t1 t1',
	n('kept alive: four delivered at their first attempt'));
my $r = requests();
is(join(' ', map { "$_->{connection}/$_->{request}" } @$r), '1/1 1/2 1/3 1/4',
	n('kept alive: the four on the receiver\'s first connection, one after the other'));
is(scalar(grep { $_->{tls}{session_reused} } @$r), 0, n('kept alive: its one handshake'));
is(scalar(@{ records($fresh, sub { defined $_[0]{tls_error} }) }), 0, n('kept alive: no failed handshake'));

# The default, cocohooks.http2 = tls: the first connection to an https
# receiver offers HTTP/2 and HTTP/1.1, and the worker reads which one ALPN
# chose; this receiver offers HTTP/1.1 alone, so that connection becomes
# the worker's own and carries the first delivery, and, as
# max_host_connections is 1, all the others: one connection in all (had
# libcurl's transfer learned the protocol from its answer, the worker's
# own connection would have been a second one).  The deliveries that came
# while it was being made waited for it.
$node->append_conf('postgresql.conf', "cocohooks.http2 = tls\n");
$node->restart;
$run = 'https, http2 = tls';
is($node->safe_psql('postgres', 'SHOW cocohooks.http2'), 'tls', n('cocohooks.http2 = tls'));
my $alpn = start_receiver(raw => 1, tls_cert => "$dir/server.pem", tls_key => "$dir/server.key");
$recv = $alpn;
$url = $alpn->{url};
my $pr = hook('/ok');
ok(fire($pr, 6, undef, 1), n('six deliveries at once: finished'));
is(join(' ', map { "$_->{success}$_->{attempts}" } @{ rows($pr) }), 't1 t1 t1 t1 t1 t1',
	n('six delivered at their first attempt'));
$r = requests();
is(scalar(@$r), 6, n('six requests'));
is(join(' ', map { $_->{connection} } @$r), '1 1 1 1 1 1',
	n('all on the first connection, the one that asked by ALPN'));
is(scalar(grep { ($_->{tls}{alpn} // '') ne 'http/1.1' } @$r), 0, n('ALPN agreed http/1.1'));
# which writer framed them: http1_wire.c puts Accept last, just before
# Content-Length; libcurl puts it right after Host
is(scalar(grep { my @l = @{ $_->{header_lines} }; !(@l >= 2 && $l[-2] =~ /^Accept:/ && $l[-1] =~ /^Content-Length:/) } @$r),
	0, n('each framed by the worker itself, not by libcurl'));
ok(fire($pr, 1, "INSERT INTO $pr->{table} VALUES (7, 'x')", 1), n('a seventh, later: finished'));
is(join(' ', map { $_->{connection} } @{ requests() }), '1 1 1 1 1 1 1',
	n('a seventh, later: on the same connection (the receiver is known to speak HTTP/1.1)'));

$node->stop;
done_testing();
