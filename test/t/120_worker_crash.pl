# Fault injection: the worker is terminated (SIGTERM) or killed (SIGKILL),
# the server is stopped fast or immediately, while events wait in the queue
# behind a slow receiver.  An orderly exit saves the undelivered events and
# the next worker delivers them with the same webhook-ids; SIGKILL and an
# immediate shutdown lose what was queued or held: measured here.  This is
# memory mode; in wal mode nothing committed is lost
# (test/t/160_wal_durability.pl).
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
# 4 deliveries at once: the rest of a batch waits in the shared queue
my $node = new_node('worker_crash', conf => qq{
cocohooks.durability = memory
restart_after_crash = on
cocohooks.max_concurrent_deliveries = 4
});
$node->start;
create_extension($node);
# undelivered events a worker saves: one file per database
my $store = $node->data_dir . '/cocohooks.events.'
  . $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'postgres'");

$node->safe_psql('postgres', qq{
	CREATE TABLE c (id int PRIMARY KEY, batch text);
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/slow/1000');
});

# records of one batch
sub batch_records
{
	my ($batch) = @_;
	return records($recv, sub { body_of($_[0])->{document}{batch} eq $batch });
}

sub write_batch
{
	my ($batch, $lo, $hi) = @_;
	api_sql($node, "INSERT INTO c SELECT g, '$batch' FROM generate_series($lo, $hi) g");
	return;
}

# Checks a batch of $n events was delivered completely: $n distinct
# webhook-ids, each document under one webhook-id, every event sent at
# most twice; returns the number of events sent twice.
sub check_complete
{
	my ($batch, $n) = @_;
	my $recs = batch_records($batch);
	my $by = by_webhook_id($recs);
	is(scalar(keys %$by), $n, "$batch: $n distinct webhook-ids received");
	my %doc_ids;
	$doc_ids{ body_of($_)->{document_id} }{ $_->{headers}{'webhook-id'} } = 1 for @$recs;
	is(scalar(keys %doc_ids), $n, "$batch: all $n documents received");
	is(scalar(grep { keys %{ $doc_ids{$_} } != 1 } keys %doc_ids), 0,
		"$batch: each document kept its webhook-id across the restart");
	is(scalar(grep { @{ $by->{$_} } > 2 } keys %$by), 0, "$batch: no event sent more than twice");
	return scalar(grep { @{ $by->{$_} } == 2 } keys %$by);
}

# ---------- c1. SIGTERM (pg_terminate_backend) with events queued
my $log_offset = -s $node->logfile;
my $st0 = stats($node);
write_batch('term', 1, 20);
ok(wait_until('4 requests in flight', 10, sub { @{ batch_records('term') } >= 4 }),
	'4 deliveries in flight, the other events queued');
my $st1 = stats($node);
cmp_ok($st1->{queue_bytes_used}, '>', 0, 'events wait in the shared queue');
my $pid = worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
# docs/guarantees.md: wait_for_deliveries returns true once every event
# queued before the call has finished (delivered or failed) -- also while
# the worker restarts
my $t_wait = time();
my $waited = wait_deliveries($node, '30 s');
my $at_wait = scalar(keys %{ by_webhook_id(batch_records('term')) });
note(sprintf('wait_for_deliveries right after SIGTERM returned %s after %.2f s with %d of 20 events received',
		$waited ? 'true' : 'false', time() - $t_wait, $at_wait));
is($at_wait, 20, 'wait_for_deliveries during the worker restart waits for the saved events');
my $pid2 = wait_worker($node, 10, $pid);
ok(defined $pid2, 'a new worker after SIGTERM');
ok(wait_until('term batch', 30, sub { keys %{ by_webhook_id(batch_records('term')) } >= 20 }),
	'all 20 events received');
ok(wait_deliveries($node), 'wait_for_deliveries');
my $dups = check_complete('term', 20);
cmp_ok($dups, '<=', 4, 'only the events in flight at SIGTERM were sent twice');
note("SIGTERM: $dups events in flight were sent again after the restart");
my ($saved) = slurp_file($node->logfile, $log_offset) =~ /cocohooks worker saved (\d+) undelivered events/;
ok(defined $saved, 'the worker saved its undelivered events');
note('SIGTERM: worker saved ' . ($saved // 'no') . ' undelivered events');
ok($node->log_contains(qr/cocohooks worker delivers \d+ undelivered events/, $log_offset),
	'the next worker delivers them');
my $st2 = stats($node);
is($st2->{dropped} - $st0->{dropped}, 0, 'SIGTERM: stats.dropped + 0');
is($st2->{failed} - $st0->{failed}, 0, 'SIGTERM: stats.failed + 0');
is($st2->{delivered} - $st0->{delivered}, 20, 'SIGTERM: stats.delivered + 20');

# ---------- c2. SIGKILL of the worker: crash restart, shared memory reset
$log_offset = -s $node->logfile;
$st0 = stats($node);
write_batch('kill', 101, 120);
ok(wait_until('4 requests in flight', 10, sub { @{ batch_records('kill') } >= 4 }),
	'4 deliveries in flight, the other events queued');
$st1 = stats($node);
# what is queued or held now can only shrink until the kill
my $outstanding = 20 - ($st1->{delivered} - $st0->{delivered}) - ($st1->{failed} - $st0->{failed});
$pid = worker_pid($node);
my $t_kill = time();
kill 'KILL', $pid;
ok(defined wait_worker($node, 60, $pid),
	'server and worker back after SIGKILL');
note(sprintf('crash restart after SIGKILL took %.2f s', time() - $t_kill));
ok($node->log_contains(qr/terminated by signal 9/, $log_offset), 'postmaster saw the kill');
# anything the dead worker could still have produced would arrive by now
usleep(2_000_000);
my $recs = batch_records('kill');
my $received = scalar(keys %{ by_webhook_id($recs) });
my $lost = 20 - $received;
note("SIGKILL: 20 events written, $outstanding queued or held at the kill, "
	  . "$received received (in flight, never answered to the worker), $lost never received");
cmp_ok($lost, '<=', $outstanding, 'SIGKILL lost no more than was queued or held');
is(scalar(grep { $_->{received_at} > $t_kill + 0.5 } @$recs), 0,
	'none of them sent after the crash restart');
ok(!-e $store, 'nothing saved on SIGKILL');

my $st_crash = stats($node);
write_batch('after_kill', 201, 210);
ok(wait_until('after_kill batch', 30, sub { keys %{ by_webhook_id(batch_records('after_kill')) } >= 10 }),
	'new events after the crash restart arrive');
ok(wait_deliveries($node), 'wait_for_deliveries');
is(check_complete('after_kill', 10), 0, 'after_kill: each sent once');
my %old_ids = map { $_->{headers}{'webhook-id'} => 1 } @{ records($recv, sub { body_of($_[0])->{document}{batch} ne 'after_kill' }) };
is(scalar(grep { $old_ids{ $_->{headers}{'webhook-id'} } } @{ batch_records('after_kill') }), 0,
	'new webhook-ids after the crash restart (no reuse)');
my $st3 = stats($node);
is($st3->{delivered} - $st_crash->{delivered}, 10, 'after crash: stats.delivered + 10');
is($st3->{dropped}, 0, 'after crash: stats.dropped 0');

# ---------- d1. fast shutdown with 500 events queued, then restart
write_batch('fast', 1001, 1500);
ok(wait_until('4 requests in flight', 10, sub { @{ batch_records('fast') } >= 4 }),
	'4 deliveries in flight, 496 queued');
$log_offset = -s $node->logfile;
my $before_stop = scalar(@{ batch_records('fast') });
my $t0 = time();
$node->stop('fast');
note(sprintf('fast shutdown with 500 events outstanding: %.2f s', time() - $t0));
ok(-e $store, 'undelivered events saved to $PGDATA/cocohooks.events.<database oid>');
($saved) = slurp_file($node->logfile, $log_offset) =~ /cocohooks worker saved (\d+) undelivered events/;
note('fast shutdown: ' . ($saved // 'no') . " events saved, $before_stop requests received before");
cmp_ok($saved // 0, '>=', 496, 'at least the 496 queued events saved');
# drain them quickly after the restart
$node->append_conf('postgresql.conf', qq{
cocohooks.max_concurrent_deliveries = 512
cocohooks.max_host_connections = 128
});
$node->start;
$t0 = time();
ok(wait_until('fast batch', 40, sub { keys %{ by_webhook_id(batch_records('fast')) } >= 500 }),
	'all 500 events received after the restart');
note(sprintf('500 events delivered %.2f s after the restart', time() - $t0));
ok(wait_deliveries($node, '30 s'), 'wait_for_deliveries');
$dups = check_complete('fast', 500);
note("fast shutdown: $dups events sent before the shutdown and again after");
cmp_ok($dups, '<=', 4, 'only events in flight at the shutdown were sent twice');
ok($node->log_contains(qr/cocohooks worker delivers \d+ undelivered events/, $log_offset),
	'the new worker delivers the saved events');
my $st4 = stats($node);
is($st4->{dropped}, 0, 'after restart: stats.dropped 0');
is($st4->{failed}, 0, 'after restart: stats.failed 0');
is($st4->{delivered}, $saved // -1, 'after restart: stats.delivered = saved events');
ok(!-e $store, 'store file removed once queued again');

# ---------- d2. immediate shutdown with events queued: they are lost
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET cocohooks.max_concurrent_deliveries = 4;
	SELECT pg_reload_conf();
});
usleep(500_000);
write_batch('immediate', 2001, 2200);
ok(wait_until('4 requests in flight', 10, sub { @{ batch_records('immediate') } >= 4 }),
	'4 deliveries in flight, 196 queued');
$log_offset = -s $node->logfile;
$node->stop('immediate');
ok(!-e $store, 'nothing saved on immediate shutdown');
$node->start;
ok(defined wait_worker($node, 30), 'worker back after immediate shutdown');
ok(wait_deliveries($node), 'nothing left to deliver');
usleep(1_500_000);
$recs = batch_records('immediate');
$received = scalar(keys %{ by_webhook_id($recs) });
$lost = 200 - $received;
note("immediate shutdown: 200 events written, $received received, $lost lost");
cmp_ok($lost, '>', 0, 'immediate shutdown loses queued events');
ok(!$node->log_contains(qr/cocohooks worker delivers \d+ undelivered events/, $log_offset),
	'no saved events after immediate shutdown');
is(stats($node)->{queued}, 0, 'nothing queued again');

# and delivery works afterwards
write_batch('after_immediate', 3001, 3004);
ok(wait_until('after_immediate', 15, sub { keys %{ by_webhook_id(batch_records('after_immediate')) } >= 4 }),
	'delivery works after the immediate shutdown');

# ---------- e. 0.1's store: $PGDATA/cocohooks.events, for cocohooks.database
# A store saved at a fast shutdown, put where 0.1 kept it: the worker of
# the database that cocohooks.database names takes it over.
write_batch('legacy', 4001, 4100);
ok(wait_until('4 requests in flight', 10, sub { @{ batch_records('legacy') } >= 4 }),
	'legacy: 4 deliveries in flight, 96 queued');
$node->stop('fast');
ok(-e $store, 'legacy: events saved');
rename($store, $node->data_dir . '/cocohooks.events') or die "rename: $!";
$node->append_conf('postgresql.conf', "cocohooks.database = 'postgres'\n");
$node->start;
ok(wait_until('legacy batch', 60, sub { keys %{ by_webhook_id(batch_records('legacy')) } >= 100 }),
	"legacy: 0.1's saved events are delivered by the worker of cocohooks.database");
ok(!-e $node->data_dir . '/cocohooks.events', "legacy: 0.1's file was taken over");

$node->stop;
done_testing();
