# cocohooks.durability = wal: every event is in the WAL with its
# transaction, and nothing committed is lost — a full queue, the worker's
# orderly restart, kill -9 of a backend, of the worker or of the postmaster,
# an immediate shutdown, a second crash during catch-up — and every
# document's deliveries share one webhook-id.
# Savepoint rollbacks and commit-time aborts deliver nothing; prepared
# transactions deliver after COMMIT PREPARED, never after ROLLBACK PREPARED.
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
my $node = new_node('wal', conf => qq{
cocohooks.durability = wal
wal_level = replica
max_wal_senders = 0
cocohooks.queue_size = '64kB'
cocohooks.max_concurrent_deliveries = 32
max_prepared_transactions = 4
restart_after_crash = on
});
$node->start;
create_extension($node);

my $slot = $node->safe_psql('postgres',
	"SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'cocohooks%'");
is($slot, 'cocohooks_' . $node->safe_psql('postgres',
		"SELECT oid FROM pg_database WHERE datname = 'postgres'"),
	'the worker keeps WAL with a replication slot of its own');

$node->safe_psql('postgres', qq{
	CREATE TABLE w (id int PRIMARY KEY, batch text);
	CREATE TABLE d (id int PRIMARY KEY, batch text,
		ref int UNIQUE DEFERRABLE INITIALLY DEFERRED);
	SELECT cocohooks.register_hook('w', 'post_save', '$recv->{url}/w');
	SELECT cocohooks.register_hook('w', 'pre_delete', '$recv->{url}/w/predel');
	SELECT cocohooks.register_hook('d', 'post_save', '$recv->{url}/d');
});

sub batch_records
{
	my ($batch) = @_;
	return records($recv, sub {
		my $doc = body_of($_[0])->{document};
		defined $doc->{batch} && $doc->{batch} eq $batch });
}

# How many requests of a batch the receiver recorded so far, counted on the
# raw log lines (decoding every record on each poll gets slow as the log grows)
sub count_batch
{
	my ($batch) = @_;
	my $n = 0;
	open my $fh, '<', $recv->{log} or return 0;
	while (my $line = <$fh>)
	{
		$n++ if index($line, qq{\\"batch\\": \\"$batch\\"}) >= 0;
	}
	close $fh;
	return $n;
}

# Checks a batch of $n events was delivered completely: every document
# received, each under one webhook-id, and those ids distinct.
sub check_complete
{
	my ($batch, $n) = @_;
	my $recs = batch_records($batch);
	my %doc_ids;
	$doc_ids{ body_of($_)->{document_id} }{ $_->{headers}{'webhook-id'} } = 1 for @$recs;
	is(scalar(keys %doc_ids), $n, "$batch: all $n documents received");
	is(scalar(grep { keys %{ $doc_ids{$_} } != 1 } keys %doc_ids), 0,
		"$batch: each document's deliveries share one webhook-id");
	is(scalar(keys %{ by_webhook_id($recs) }), $n, "$batch: $n distinct webhook-ids");
	return;
}

# ---------- the basics: one event, its id from the WAL
api_sql($node, "INSERT INTO w VALUES (1, 'basic')");
ok(wait_deliveries($node), 'wait_for_deliveries in wal mode');
my ($basic) = @{ batch_records('basic') };
like($basic->{headers}{'webhook-id'}, qr/^wal_[0-9A-F]{16}_\d+$/,
	'webhook-id is made of the WAL position and the hook id');

# ---------- a full queue drops nothing
my $st0 = stats($node);
api_sql($node, "INSERT INTO w SELECT g, 'full' FROM generate_series(1001, 6000) g");
ok(wait_deliveries($node, '60 s'), 'wait_for_deliveries after 5,000 rows through a 64 kB queue');
check_complete('full', 5000);
is(stats($node)->{dropped}, $st0->{dropped}, 'stats.dropped stays 0: what the queue could not take came from the WAL');

# ---------- rolled back work delivers nothing
api_sql($node, q{
	BEGIN;
	INSERT INTO w VALUES (10, 'sp-kept');
	SAVEPOINT s1;
	INSERT INTO w VALUES (11, 'sp-gone');
	SAVEPOINT s2;
	INSERT INTO w VALUES (12, 'sp-gone');
	RELEASE SAVEPOINT s2;
	ROLLBACK TO SAVEPOINT s1;
	INSERT INTO w VALUES (13, 'sp-kept');
	SAVEPOINT s3;
	INSERT INTO w VALUES (14, 'sp-kept');
	RELEASE SAVEPOINT s3;
	COMMIT;
});
my ($ret, $out, $err) = $node->psql('postgres', q{
	SET cocohooks.api_session = on;
	BEGIN;
	INSERT INTO d VALUES (1, 'deferred-gone', 7);
	INSERT INTO d VALUES (2, 'deferred-gone', 7);
	COMMIT;
});
isnt($ret, 0, 'a deferred constraint aborts the transaction at commit');
ok(wait_deliveries($node), 'deliveries finished');
is_deeply([ sort map { body_of($_)->{document}{id} } @{ batch_records('sp-kept') } ],
	[ 10, 13, 14 ], 'rows of committed savepoints are delivered');
is(scalar @{ batch_records('sp-gone') }, 0, 'rows of a rolled-back savepoint are not');
is(scalar @{ batch_records('deferred-gone') }, 0, 'a commit-time abort delivers nothing');

# ---------- two-phase commit
api_sql($node, q{
	BEGIN;
	INSERT INTO w VALUES (20, 'prepared-commit');
	DELETE FROM w WHERE id = 1;
	PREPARE TRANSACTION 'cocohooks_p1';
	BEGIN;
	INSERT INTO w VALUES (21, 'prepared-rollback');
	PREPARE TRANSACTION 'cocohooks_p2';
});
ok(wait_deliveries($node), 'deliveries finished with two prepared transactions');
is(scalar @{ batch_records('prepared-commit') }, 0, 'nothing of a prepared transaction before COMMIT PREPARED');
is(scalar @{ records($recv, sub { $_[0]{path} eq '/w/predel' }) }, 1,
	'its pre_delete went out at once');
$node->safe_psql('postgres', "COMMIT PREPARED 'cocohooks_p1'");
$node->safe_psql('postgres', "ROLLBACK PREPARED 'cocohooks_p2'");
ok(wait_deliveries($node), 'deliveries finished after COMMIT PREPARED');
is(scalar @{ batch_records('prepared-commit') }, 1, 'COMMIT PREPARED from another session delivers');
is(scalar @{ batch_records('prepared-rollback') }, 0, 'ROLLBACK PREPARED delivers nothing');

# ---------- crashes with committed events outstanding behind a slow receiver
$node->safe_psql('postgres', qq{
	CREATE TABLE c (id int PRIMARY KEY, batch text);
	SELECT cocohooks.register_hook('c', 'post_save', '$recv->{url}/slow/150/c');
});

sub crash_batch
{
	my ($batch, $lo, $crash) = @_;
	my $hi = $lo + 1999;
	api_sql($node, "INSERT INTO c SELECT g, '$batch' FROM generate_series($lo, $hi) g");
	ok(wait_until("$batch: deliveries under way", 30, sub { count_batch($batch) >= 50 }),
		"$batch: deliveries under way");
	my $before = count_batch($batch);
	$crash->();
	cmp_ok($before, '<', 2000, "$batch: the crash came with events outstanding ($before of 2000 received)");
	ok(wait_until("$batch: every document", 120, sub { count_batch($batch) >= 2000 }),
		"$batch: delivered after the crash");
	check_complete($batch, 2000);
	return;
}

sub wait_back
{
	ok(wait_server($node, 60), 'the server is back');
	ok(defined wait_worker($node, 30), 'a worker runs again');
	return;
}

crash_batch('terminate', 1000001, sub {
	my $pid = worker_pid($node);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	ok(defined wait_worker($node, 30, $pid), 'a new worker after SIGTERM');
});

crash_batch('kill-backend', 10001, sub {
	my $psql = $node->background_psql('postgres');
	my $pid = $psql->query_safe('SELECT pg_backend_pid()');
	kill 'KILL', $pid;
	eval { $psql->quit };
	wait_back();
});

crash_batch('kill-worker', 20001, sub {
	kill 'KILL', worker_pid($node);
	wait_back();
});

crash_batch('immediate', 30001, sub {
	$node->stop('immediate');
	$node->start;
	wait_back();
});

# kill -9 of the postmaster: its children go when they notice, then a start
crash_batch('kill-postmaster', 50001, sub {
	my ($pm) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	my @children = grep { /^\d+$/ } map { s/\s+//gr } split /\n/, `ps -o pid= --ppid $pm`;
	$node->kill9;
	ok(wait_until('the postmaster\'s children to exit', 60, sub { !grep { kill 0, $_ } @children }),
		'every child of the killed postmaster exited');
	$node->start;
	wait_back();
});

# a second crash while the first one's events are being caught up
crash_batch('twice', 40001, sub {
	kill 'KILL', worker_pid($node);
	wait_back();
	my $at = count_batch('twice');
	ok(wait_until('catch-up under way', 30, sub { count_batch('twice') >= $at + 50 }),
		'catch-up under way');
	kill 'KILL', worker_pid($node);
	wait_back();
});

is(stats($node)->{dropped}, 0, 'stats.dropped is 0 after all the crashes');

$node->stop;
done_testing();
