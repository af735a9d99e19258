# cocohooks.redeliver(): a logged delivery is queued again at commit with
# the same webhook-id and body text; only by the owner of the hook's
# table.  cocohooks.log_retention and log_retention_failed: old log rows
# are pruned by the worker, successes and failures each after their own
# retention (a failure is what redeliver() needs), a bounded batch of each
# per pass.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('redeliver');
$node->start;
create_extension($node);

# a row with values whose JSON rendering is easy to get subtly wrong
my $fail_hook = $node->safe_psql('postgres', qq{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE TABLE e (id text PRIMARY KEY, v text, n numeric, f float8, j jsonb,
	                ts timestamptz, arr int[]);
	ALTER TABLE e OWNER TO alice;
	GRANT ALL ON e TO bob;
	SELECT cocohooks.register_hook('e', 'post_save', '$recv->{url}/status/500', max_retries => 0);
});
my $doc = q{'k"1\\é', E'tab\there "q" \\\\ ünï €𝄞 \u0001', 1.50, 1e-7,
	'{"z": 1, "a": [1.0, "x"], "nested": {"b": null, "a": "\\u00e9"}}',
	'2024-01-02 03:04:05.678+00', '{1,2,3}'};
api_sql($node, "INSERT INTO e VALUES ($doc); UPDATE e SET n = 2.500");
ok(wait_deliveries($node), 'the two deliveries finished');
my $orig = records($recv);
is(scalar(@$orig), 2, 'receiver got create and update (answered 500)');
my ($del_id, $wid) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT id, webhook_id FROM cocohooks.deliveries
	WHERE hook_id = $fail_hook AND NOT success AND payload->>'operation' = 'update'});
ok($del_id, 'the failed update delivery is logged');
my ($orig_rec) = grep { $_->{headers}{'webhook-id'} eq $wid } @$orig;
ok($orig_rec, 'the logged webhook-id is the one sent');
like($orig_rec->{body}, qr/"old_data": \{.*\x{1D11E} \\u0001/, 'the body has old_data, escapes and non-ASCII text');
is( $node->safe_psql('postgres',
		"SELECT payload IS NOT NULL, status_code, attempts FROM cocohooks.deliveries WHERE id = $del_id"),
	't|500|1', 'failure row: payload kept, status 500, 1 attempt');

sub recs_of
{
	my ($webhook_id) = @_;
	return records($recv, sub { $_[0]{headers}{'webhook-id'} eq $webhook_id });
}

# --- redeliver in a transaction that commits: sent at commit
my $t0 = time();
is( $node->safe_psql('postgres',
		"BEGIN; SELECT cocohooks.redeliver($del_id); SELECT pg_sleep(1); COMMIT;"),
	"t\n", 'redeliver() returns true');
my $re = wait_records($recv, 2, 10, sub { $_[0]{headers}{'webhook-id'} eq $wid });
is(scalar(@$re), 2, 'redelivered: a second request with the same webhook-id');
if (@$re == 2)
{
	cmp_ok($re->[1]{received_at} - $t0, '>=', 1, 'sent after the commit, not at the call');
	is($re->[1]{body}, $orig_rec->{body}, 'byte-identical body');
	is($re->[1]{headers}{'x-hook-event'}, 'post_save', 'X-Hook-Event header');
	is($re->[1]{path}, '/status/500', 'to the hook URL');
}
ok(wait_deliveries($node), 'redelivery finished');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE webhook_id = '$wid' AND NOT success"),
	'2', 'the failed redelivery is logged too, under the same webhook-id');

# --- rolled back: nothing sent
is( $node->safe_psql('postgres',
		"BEGIN; SELECT cocohooks.redeliver($del_id); ROLLBACK;"),
	't', 'redeliver() in a transaction that rolls back');
# a later committed redelivery of the other (create) event marks the moment
# the worker has passed the rolled-back one
my ($del_create, $wid_create) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT id, webhook_id FROM cocohooks.deliveries
	WHERE hook_id = $fail_hook AND payload->>'operation' = 'create'});
$node->safe_psql('postgres', "SELECT cocohooks.redeliver($del_create)");
is(scalar(@{ wait_records($recv, 2, 10, sub { $_[0]{headers}{'webhook-id'} eq $wid_create }) }),
	2, 'a committed redelivery after the rolled-back one arrives');
ok(wait_deliveries($node), 'finished');
usleep(300_000);
is(scalar(@{ recs_of($wid) }), 2, 'the rolled-back redelivery sent nothing');
my ($c1, $c2) = map { $_->{body} } @{ recs_of($wid_create) };
is($c2, $c1, 'create event redelivered byte-identical too');

# --- bad arguments
is($node->safe_psql('postgres', 'SELECT cocohooks.redeliver(999999999)'), 'f',
	'redeliver(non-existent id) returns false');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT cocohooks.redeliver(NULL)');
isnt($ret, 0, 'redeliver(NULL) fails');
like($err, qr/ERROR:.*delivery_id/, 'error names delivery_id');

# --- ownership: bob may write alice's table, not redeliver its deliveries
my $n_before = scalar(@{ records($recv) });
($ret, $out, $err) = $node->psql('postgres', "SET ROLE bob; SELECT cocohooks.redeliver($del_id)");
isnt($ret, 0, 'a non-owner cannot redeliver another role\'s delivery');
like($err, qr/ERROR:\s+must be owner/, 'ownership error') or diag($err);
is( $node->safe_psql('postgres', "SET ROLE alice; SELECT cocohooks.redeliver($del_id)"),
	't', 'the owner of the table can');
ok(wait_deliveries($node), 'finished');
my $after_roles = records($recv);
is(scalar(@$after_roles) - $n_before, 1, 'exactly one request (from alice\'s call)');

# --- a row without payload cannot be redelivered
$node->safe_psql('postgres', qq{
	INSERT INTO cocohooks.deliveries (hook_id, event, collection, document_id, success,
	    attempts, duration_ms, queued_at, finished_at, webhook_id)
	VALUES ($fail_hook, 'post_save', 'e', 'x', false, 1, 1, now(), now(), 'msg_x_$fail_hook')});
($ret, $out, $err) = $node->psql('postgres',
	"SELECT cocohooks.redeliver(id) FROM cocohooks.deliveries WHERE webhook_id = 'msg_x_$fail_hook'");
isnt($ret, 0, 'a row without payload cannot be redelivered');
like($err, qr/no stored payload/, 'error says so');

# --- success rows: payload only while log_deliveries = 'all'
my $ok_hook = $node->safe_psql('postgres', qq{
	CREATE TABLE s (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('s', 'post_save', '$recv->{url}/s');
});
api_sql($node, "INSERT INTO s VALUES (1, 'failures mode')");
ok(wait_deliveries($node), 'finished');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $ok_hook"),
	'0', 'log_deliveries = failures: no success row, so no payload kept for a success');

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_deliveries = 'all';
	SELECT pg_reload_conf();
});
my $next = 1;
ok( wait_until('a success row', 15, sub {
		$next++;
		api_sql($node, "INSERT INTO s VALUES ($next, 'all mode')");
		wait_deliveries($node);
		$node->safe_psql('postgres',
			"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $ok_hook") > 0 }),
	'log_deliveries = all: success rows logged');
my ($ok_id, $ok_wid, $ok_payload) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT id, webhook_id, payload IS NOT NULL FROM cocohooks.deliveries
	WHERE hook_id = $ok_hook ORDER BY id LIMIT 1});
is($ok_payload, 't', 'success row has its payload');
is($node->safe_psql('postgres', "SELECT cocohooks.redeliver($ok_id)"), 't',
	'redeliver() of a success row');
my $ok_recs = wait_records($recv, 2, 10, sub { $_[0]{headers}{'webhook-id'} eq $ok_wid });
is(scalar(@$ok_recs), 2, 'success redelivered with the same webhook-id');
is($ok_recs->[1]{body}, $ok_recs->[0]{body}, 'byte-identical body') if @$ok_recs == 2;
ok(wait_deliveries($node), 'finished');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE webhook_id = '$ok_wid' AND success"),
	'2', 'both deliveries logged as success');

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_deliveries = 'failures';
	SELECT pg_reload_conf();
});
usleep(500_000);
my $max_id = $node->safe_psql('postgres', 'SELECT max(id) FROM cocohooks.deliveries');
api_sql($node, "INSERT INTO s VALUES (1000, 'failures again')");
ok(wait_deliveries($node), 'finished');
ok(wait_records($recv, 1, 10, sub { $_[0]{path} eq '/s' && body_of($_[0])->{document_id} eq '1000' }),
	'delivered');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE id > $max_id AND success"),
	'0', 'back to failures: no success row (no payload) written');

# ---------- log_retention (successes) and log_retention_failed (failures)
is($node->safe_psql('postgres', 'SHOW cocohooks.log_retention'), '7d', 'default log_retention 7d');
is($node->safe_psql('postgres', 'SHOW cocohooks.log_retention_failed'), '30d',
	'default log_retention_failed 30d');

# Inserts $n log rows, failed unless $success, that finished $age ago.
sub old_rows
{
	my ($n, $age, $tag, $success) = @_;
	my $ok = $success ? 'true' : 'false';
	$node->safe_psql('postgres', qq{
		INSERT INTO cocohooks.deliveries (hook_id, event, collection, document_id, success,
		    attempts, duration_ms, queued_at, finished_at, webhook_id)
		SELECT $fail_hook, 'post_save', 'e', '$tag', $ok, 1, 1,
		       now() - interval '$age', now() - interval '$age', 'msg_${tag}_' || g
		FROM generate_series(1, $n) g});
	return;
}

sub count_tag
{
	my ($tag) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE document_id = '$tag'");
}

# the prune of each kind goes through its own partial index (the table
# is small here: no sequential scan, to see which index the plan takes)
like($node->safe_psql('postgres', q{
	SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT id FROM cocohooks.deliveries
	WHERE success AND finished_at < now() - interval '1 h' ORDER BY finished_at LIMIT 1000}),
	qr/deliveries_succeeded_idx/, 'the prune of successes uses their index');
like($node->safe_psql('postgres', q{
	SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT id FROM cocohooks.deliveries
	WHERE NOT success AND finished_at < now() - interval '1 h' ORDER BY finished_at LIMIT 1000}),
	qr/deliveries_failed_idx/, 'the prune of failures uses theirs');

old_rows(5, '2 hours', 'old_ok', 1);
old_rows(5, '2 hours', 'old_failed', 0);
old_rows(3, '30 minutes', 'recent_ok', 1);
old_rows(3, '30 minutes', 'recent_failed', 0);
my $real_rows = $node->safe_psql('postgres',
	"SELECT count(*) FROM cocohooks.deliveries WHERE document_id NOT LIKE 'old%' AND document_id NOT LIKE 'recent%'");
$t0 = time();
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_retention = '1h';
	SELECT pg_reload_conf();
});
ok(wait_until('old successes pruned', 10, sub { count_tag('old_ok') == 0 }),
	'log_retention 1h: successes 2 hours old are gone after the reload');
note(sprintf('log_retention: 5 old successes pruned %.2f s after the reload', time() - $t0));
is(count_tag('old_failed'), '5', 'failures of the same age are kept (log_retention_failed 30d)');
is(count_tag('recent_ok') . ' ' . count_tag('recent_failed'), '3 3', 'rows 30 minutes old remain');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE document_id NOT LIKE 'old%' AND document_id NOT LIKE 'recent%'"),
	$real_rows, 'fresh rows remain');
is($node->safe_psql('postgres', 'SHOW cocohooks.log_retention'), '1h', 'SHOW says 1h');

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_retention_failed = '90min';
	SELECT pg_reload_conf();
});
ok(wait_until('old failures pruned', 10, sub { count_tag('old_failed') == 0 }),
	'log_retention_failed 90min: failures 2 hours old go after their own retention');
is(count_tag('recent_ok') . ' ' . count_tag('recent_failed'), '3 3', 'rows 30 minutes old still remain');

# 0 keeps rows forever
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_retention = 0;
	ALTER SYSTEM SET cocohooks.log_retention_failed = 0;
	SELECT pg_reload_conf();
});
usleep(500_000);
old_rows(4, '30 days', 'ancient', 0);
old_rows(4, '30 days', 'ancient_ok', 1);
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
usleep(2_000_000);
is(count_tag('ancient') . ' ' . count_tag('ancient_ok'), '4 4', 'retentions 0: nothing pruned');

# 2500 old rows of each kind: several passes, each deleting at most 1000 of
# each (the worker says so at DEBUG1, one line per pass)
old_rows(2500, '3 hours', 'many', 0);
old_rows(2500, '3 hours', 'many_ok', 1);
my $log_offset = -s $node->logfile;
$t0 = time();
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET log_min_messages = debug1;
	ALTER SYSTEM SET cocohooks.log_retention = '90min';
	ALTER SYSTEM SET cocohooks.log_retention_failed = '90min';
	SELECT pg_reload_conf();
});
ok(wait_until('2500 old rows of each kind pruned', 15, sub {
		count_tag('many') == 0 && count_tag('ancient') == 0
		  && count_tag('many_ok') == 0 && count_tag('ancient_ok') == 0 }),
	'2504 old rows of each kind pruned in batches');
note(sprintf('log_retention: 5008 old rows pruned %.2f s after the reload', time() - $t0));
$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET log_min_messages;
	SELECT pg_reload_conf();
});
my @passes = slurp_file($node->logfile, $log_offset)
  =~ /cocohooks pruned (\d+) rows of successful and (\d+) rows of failed deliveries/g;
my ($sum_ok, $sum_failed, $max) = (0, 0, 0);
for (my $i = 0; $i < @passes; $i += 2)
{
	$sum_ok += $passes[$i];
	$sum_failed += $passes[$i + 1];
	$max = $passes[$i] if $passes[$i] > $max;
	$max = $passes[$i + 1] if $passes[$i + 1] > $max;
}
note('prune passes (successes, failures): '
	  . join(' ', map { "($passes[2 * $_], $passes[2 * $_ + 1])" } 0 .. $#passes / 2));
is("$sum_ok $sum_failed", '2504 2504', 'the passes deleted every old row of each kind');
is($max, 1000, 'no pass deleted more than 1000 of a kind');
cmp_ok(scalar(@passes) / 2, '>=', 3, 'so it took three passes or more');
is(count_tag('recent_ok') . ' ' . count_tag('recent_failed'), '3 3', 'rows 30 minutes old still remain');

$node->stop;
done_testing();
