# The worker: restart after termination and after a crash, prompt exit on
# SIGTERM and on fast shutdown with requests in flight, settings reload.
# In memory mode, where an orderly exit saves the worker's events to disk
# (in wal mode they are read again from the WAL: test/t/160_wal_durability.pl).
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
my $node = new_node('lifecycle', conf => "restart_after_crash = on\ncocohooks.durability = memory\n");
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, v text);
	CREATE TABLE t_slow (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/t');
});
my $slow_hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('t_slow', 'post_save', '$recv->{url}/slow/4000')");

my $next_id = 0;

# Writes one API-tagged row of t and tells whether it reached the receiver.
sub delivered_write
{
	my ($what) = @_;
	my $id = ++$next_id;
	api_sql($node, "INSERT INTO t VALUES ($id, '$what')");
	my $ok = wait_deliveries($node);
	my $recs = wait_records($recv, 1, 10,
		sub { $_[0]{path} eq '/t' && body_of($_[0])->{document_id} eq "$id" });
	return $ok && @$recs == 1;
}

ok(delivered_write('first'), 'delivery works at start');

# pg_terminate_backend: the postmaster starts a new worker
my $pid1 = worker_pid($node);
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid1)"),
	't', 'worker terminated');
my $t0 = time();
my $pid2 = wait_worker($node, 10, $pid1);
ok(defined $pid2, 'a new worker appears after pg_terminate_backend');
note(sprintf('new worker after pg_terminate_backend in %.2f s', time() - $t0));
ok(delivered_write('after terminate'), 'deliveries continue after the restart');

# SIGKILL: crash restart of the whole server
my $log_offset = -s $node->logfile;
kill 'KILL', $pid2;
ok(defined wait_worker($node, 60, $pid2),
	'server and worker come back after SIGKILL of the worker');
ok($node->log_contains(qr/terminated by signal 9/, $log_offset),
	'postmaster saw the worker killed');
my $pid3 = worker_pid($node);
ok(delivered_write('after crash'), 'new writes are delivered after crash restart');

# SIGTERM while a request is in flight: the worker exits at once
api_sql($node, "INSERT INTO t_slow VALUES (1, 'slow')");
ok( wait_until('in_flight > 0', 10, sub { stats($node)->{in_flight} > 0 }),
	'slow request in flight');
$pid3 = worker_pid($node);
$t0 = time();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid3)");
my $gone = wait_until('worker exit', 3, sub { !kill(0, $pid3) });
my $took = time() - $t0;
ok($gone, 'worker gone within 3 s of SIGTERM with a request in flight');
note(sprintf('worker exit after SIGTERM with request in flight: %.2f s', $took));
my $pid4 = wait_worker($node, 10, $pid3);
ok(defined $pid4, 'worker restarted after SIGTERM');
ok($node->log_contains(qr/cocohooks worker saved 1 undelivered events for the next worker/, $log_offset),
	'the event held by the worker is saved when it stops');
# the new worker says so as it takes the saved events, a moment after it
# appears in pg_stat_activity
ok(wait_until('the saved events are taken', 10,
		sub { $node->log_contains(qr/cocohooks worker delivers 1 undelivered events/, $log_offset) }),
	'the next worker delivers it');
ok(wait_deliveries($node), 'the saved event is delivered by the next worker');
my $slow_recs = records($recv, sub { $_[0]{path} eq '/slow/4000' });
is(scalar(@$slow_recs), 2, 'the slow event was sent again after the restart');
is($slow_recs->[0]{headers}{'webhook-id'}, $slow_recs->[1]{headers}{'webhook-id'},
	'with the same webhook-id');

# SIGHUP: log_deliveries = all takes effect in the running worker
ok(delivered_write('before reload'), 'delivered before reload');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.deliveries WHERE success'),
	'0', 'no success rows while log_deliveries = failures');
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.log_deliveries = 'all';
	ALTER SYSTEM SET cocohooks.max_concurrent_deliveries = 1;
	SELECT pg_reload_conf();
});
my $success_rows = 0;
ok( wait_until(
		'success rows in cocohooks.deliveries',
		15,
		sub {
			delivered_write('after reload');
			$success_rows = $node->safe_psql('postgres',
				'SELECT count(*) FROM cocohooks.deliveries WHERE success');
			return $success_rows > 0;
		}),
	'after SIGHUP successful deliveries are logged');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE success AND (status_code <> 200 OR error IS NOT NULL OR attempts <> 1)"),
	'0', 'success rows have status 200, no error, one attempt');

# events still in the shared queue and the one the worker held both
# survive a worker restart (max_concurrent_deliveries = 1 since the reload)
my $st0 = stats($node);
api_sql($node, "INSERT INTO t_slow VALUES (3, 'slow')");
ok( wait_until('in_flight > 0', 10, sub { stats($node)->{in_flight} > 0 }),
	'slow request holds the only delivery slot');
my $first = $next_id + 1;
api_sql($node, "INSERT INTO t VALUES ($first, 'queued'), ($first + 1, 'queued'), ($first + 2, 'queued')");
$next_id += 3;
my $st1 = stats($node);
cmp_ok($st1->{queue_bytes_used}, '>', 0, 'three events wait in the shared queue');
my $pid5 = worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid5)");
ok(defined wait_worker($node, 10, $pid5), 'worker restarted');
ok(wait_deliveries($node), 'queued events finished by the new worker');
my $queued_recs = records($recv, sub { $_[0]{path} eq '/t' && body_of($_[0])->{document_id} >= $first });
is(scalar(@$queued_recs), 3, 'the three queued events were delivered by the new worker');
my $st2 = stats($node);
is($st2->{dropped} - $st0->{dropped}, 0, 'nothing was dropped');
is(scalar(@{ records($recv, sub { $_[0]{path} eq '/slow/4000' }) }), 4,
	'the held slow event was sent again after the restart');

# fast shutdown with a request in flight
api_sql($node, "INSERT INTO t_slow VALUES (2, 'slow')");
ok( wait_until('in_flight > 0', 10, sub { stats($node)->{in_flight} > 0 }),
	'slow request in flight before shutdown');
$t0 = time();
$node->stop('fast');
$took = time() - $t0;
cmp_ok($took, '<', 5, 'fast shutdown with a request in flight takes < 5 s');
note(sprintf('fast shutdown with request in flight: %.2f s', $took));

done_testing();
