# W3C trace context: events written while cocohooks.traceparent is set
# carry it, and every request of their deliveries sends it as traceparent
# (with tracestate when set): a session's setting, SET LOCAL for one
# transaction, pre_* events, retries from memory and parked ones, events
# read from the WAL (a transaction past work_mem, and after a crash).
# Unset, no traceparent header goes out; an invalid value is refused and
# the one in force stays.  A redelivery from the log carries none.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('trace', conf => qq{
cocohooks.durability = wal
cocohooks.log_deliveries = all
restart_after_crash = on
});
$node->start;
create_extension($node);

my $tp1 = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
my $tp2 = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
my $tp3 = '00-11111111111111111111111111111111-2222222222222222-01';
my $tp4 = '00-33333333333333333333333333333333-4444444444444444-01';
my $tp5 = '00-55555555555555555555555555555555-6666666666666666-01';
my $ts = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE';

$node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, batch text);
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/t');
	SELECT cocohooks.register_hook('t', 'pre_delete', '$recv->{url}/t/predel');
	SELECT cocohooks.register_hook('t', 'post_delete', '$recv->{url}/t/postdel',
		headers => '{"traceparent": "00-99999999999999999999999999999999-9999999999999999-01", "X-Other": "kept"}');
});

# the records of a batch (the document's batch column)
sub batch_records
{
	my ($batch) = @_;
	return records($recv, sub {
		my $doc = body_of($_[0])->{document};
		defined $doc->{batch} && $doc->{batch} eq $batch });
}

# how many of $recs send exactly $tp and $state (undef: no such header)
sub count_with
{
	my ($recs, $tp, $state) = @_;
	return scalar grep {
		my $h = $_->{headers};
		(defined $tp ? (defined $h->{traceparent} && $h->{traceparent} eq $tp)
			: !exists $h->{traceparent})
		  && (defined $state ? (defined $h->{tracestate} && $h->{tracestate} eq $state)
			: !exists $h->{tracestate})
	} @$recs;
}

# ---------- a session's setting: all its events, pre_* ones too
api_sql($node, qq{
	SET cocohooks.traceparent = '$tp1';
	SET cocohooks.tracestate = '$ts';
	INSERT INTO t VALUES (1, 'session'), (2, 'session');
	UPDATE t SET batch = 'session' WHERE id = 2;
	DELETE FROM t WHERE id = 1;
});
ok(wait_deliveries($node), 'deliveries finished');
my $recs = batch_records('session');
is(scalar @$recs, 5, 'three post_save, a pre_delete and a post_delete delivered');
is(count_with($recs, $tp1, $ts), 5, 'every request sends the session\'s traceparent and tracestate');
is(scalar(grep { $_->{path} eq '/t/predel' } @$recs), 1, 'the pre_delete among them');
my ($postdel) = grep { $_->{path} eq '/t/postdel' } @$recs;
is($postdel->{headers}{'x-other'}, 'kept', 'the hook\'s other headers are sent');
unlike(slurp_file($recv->{log}), qr/9999999999999999-01/,
	'the hook\'s own traceparent header gives way to the event\'s');

# ---------- SET LOCAL: that transaction only; unset: no header at all
api_sql($node, qq{
	BEGIN;
	SET LOCAL cocohooks.traceparent = '$tp2';
	INSERT INTO t VALUES (10, 'local');
	COMMIT;
	INSERT INTO t VALUES (11, 'after-local');
	SET cocohooks.tracestate = '$ts';
	INSERT INTO t VALUES (12, 'state-only');
});
ok(wait_deliveries($node), 'deliveries finished');
$recs = batch_records('local');
is(scalar @$recs, 1, 'the SET LOCAL transaction\'s event delivered');
is(count_with($recs, $tp2, undef), 1, 'it sends the transaction\'s traceparent, and no tracestate');
$recs = batch_records('after-local');
is(count_with($recs, undef, undef), 1, 'the next transaction\'s event sends neither header');
$recs = batch_records('state-only');
is(count_with($recs, undef, undef), 1, 'a tracestate without traceparent sends nothing');
$recs = records($recv, sub { !exists $_[0]{headers}{traceparent} });
is(count_with($recs, undef, undef), scalar @$recs, 'no request without traceparent has a tracestate');

# ---------- an invalid value is refused, the one in force stays
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SET cocohooks.api_session = on;
	SET cocohooks.traceparent = '$tp1';
	SET cocohooks.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01';
	SET cocohooks.tracestate = 'Rojo=1';
	SHOW cocohooks.traceparent;
	INSERT INTO t VALUES (20, 'kept');
}, on_error_stop => 0);
like($err, qr/invalid value for parameter "cocohooks\.traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"\nDETAIL:  The parent-id must not be all zeros\./,
	'an all-zero parent-id is refused, with DETAIL');
like($err, qr/invalid value for parameter "cocohooks\.tracestate": "Rojo=1"\nDETAIL:  List member "Rojo=1" does not start with a valid key and "="\.\nHINT:  A key is/,
	'an upper-case tracestate key is refused, with DETAIL and HINT');
is($out, $tp1, 'the valid value stays in force');
ok(wait_deliveries($node), 'deliveries finished');
is(count_with(batch_records('kept'), $tp1, undef), 1, 'and the next event carries it');

# ---------- retries: from memory (500 first), and parked (Retry-After 9 s)
$node->safe_psql('postgres', qq{
	CREATE TABLE r (id int PRIMARY KEY, batch text);
	SELECT cocohooks.register_hook('r', 'post_save', '$recv->{url}/failfirst/r');
	CREATE TABLE p (id int PRIMARY KEY, batch text);
	SELECT cocohooks.register_hook('p', 'post_save', '$recv->{url}/status/503?retry_after=9',
		max_retries => 1);
});
api_sql($node, qq{
	SET cocohooks.traceparent = '$tp3';
	SET cocohooks.tracestate = '$ts';
	INSERT INTO r VALUES (1, 'retried');
	INSERT INTO p VALUES (1, 'parked');
});
ok(wait_until('a parked delivery', 30, sub {
			$node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.retry_queue') > 0 }),
	'the 503 with Retry-After: 9 parks its retry in cocohooks.retry_queue');
ok(wait_deliveries($node, '60 s'), 'deliveries finished');
$recs = batch_records('retried');
is(scalar @$recs, 2, 'the failfirst delivery was attempted twice');
is(scalar keys %{ by_webhook_id($recs) }, 1, 'under one webhook-id');
is(count_with($recs, $tp3, $ts), 2, 'both attempts send the same traceparent and tracestate');
$recs = batch_records('parked');
is(scalar @$recs, 2, 'the parked delivery was attempted again');
is(count_with($recs, $tp3, $ts), 2, 'its parked retry sends the same traceparent and tracestate');

# ---------- events read from the WAL: a transaction past work_mem
api_sql($node, qq{
	BEGIN;
	SET LOCAL work_mem = '64kB';
	SET LOCAL cocohooks.traceparent = '$tp4';
	INSERT INTO t SELECT g, 'big' FROM generate_series(1001, 3000) g;
	COMMIT;
});
ok(wait_deliveries($node, '120 s'), 'the transaction past work_mem was delivered');
$recs = batch_records('big');
is(scalar keys %{ by_webhook_id($recs) }, 2000, 'all 2,000 events');
is(scalar(grep { $_->{headers}{'webhook-id'} =~ /^wal_[0-9A-F]{16}_\d+$/ } @$recs), scalar @$recs,
	'named after their WAL position');
is(count_with($recs, $tp4, undef), scalar @$recs, 'every one read from the WAL sends its traceparent');

# ---------- events read again from the WAL after a crash
$node->safe_psql('postgres', qq{
	CREATE TABLE c (id int PRIMARY KEY, batch text);
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/slow/1000/c');
});
api_sql($node, qq{
	SET cocohooks.traceparent = '$tp5';
	SET cocohooks.tracestate = '$ts';
	INSERT INTO c SELECT g, 'crash' FROM generate_series(1, 100) g;
});
ok(wait_until('deliveries under way', 30, sub { @{ batch_records('crash') } >= 5 }),
	'deliveries under way');
$node->stop('immediate');
my $restarted = time();
$node->start;
ok(defined wait_worker($node, 30), 'a worker runs again');
ok(wait_deliveries($node, '120 s'), 'deliveries finished after the crash');
$recs = batch_records('crash');
is(scalar keys %{ by_webhook_id($recs) }, 100, 'all 100 events delivered');
my @after = grep { $_->{received_at} >= $restarted } @$recs;
cmp_ok(scalar @after, '>', 0, 'some were sent after the restart, read back from the WAL');
is(count_with($recs, $tp5, $ts), scalar @$recs,
	'every request, before and after the crash, sends the traceparent and tracestate');

# ---------- a redelivery from the log carries none
my $id = $node->safe_psql('postgres', q{
	SELECT d.id FROM cocohooks.deliveries d JOIN cocohooks.hooks h ON h.id = d.hook_id
	 WHERE h.url LIKE '%/failfirst/r' AND d.success});
my $before = scalar @{ batch_records('retried') };
$node->safe_psql('postgres', qq{
	SET cocohooks.traceparent = '$tp1';
	SELECT cocohooks.redeliver($id);
});
ok(wait_deliveries($node), 'the redelivery finished');
$recs = batch_records('retried');
is(scalar @$recs, $before + 1, 'redelivered');
is(count_with([ $recs->[-1] ], undef, undef), 1, 'a redelivery sends no traceparent');

done_testing();
