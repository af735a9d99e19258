# A database whose worker cannot start yet (no free background worker slot)
# loses nothing in wal mode: CREATE EXTENSION makes the database's
# replication slot itself, so the WAL of its events is kept until the
# worker runs, however late, and across a restart.  DROP EXTENSION and a
# rolled-back CREATE EXTENSION leave no slot behind, with or without a
# worker (docs/guarantees.md §7).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
# three background workers: the logical replication launcher, cocohooks'
# launcher and the worker of database postgres; none is left for another
my $node = new_node('late', conf => "max_worker_processes = 3\nmax_replication_slots = 3\n");
$node->start;
create_extension($node);
$node->safe_psql('postgres', 'CREATE DATABASE late1');
$node->safe_psql('postgres', 'CREATE DATABASE late2');
my %oid = map { $_ => $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$_'") }
  qw(late1 late2);

sub slot_of
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(CASE WHEN restart_lsn IS NULL THEN 'no WAL' ELSE active::text END, ','), 'none') "
		  . "FROM pg_replication_slots WHERE slot_name = 'cocohooks_$oid{$db}'");
}

sub worker_of
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'cocohooks worker' AND datname = '$db'");
}

# --- the worker cannot start; the slot is there all the same --------------
my $log_offset = -s $node->logfile;
my (undef, undef, $create_err) = $node->psql('late1', 'CREATE EXTENSION cocohooks');
like($create_err, qr/WARNING:  the cocohooks worker of this database has not started\nDETAIL:  Events wait until it runs/,
	'CREATE EXTENSION says that the worker has not started');
$node->safe_psql('late1', qq{
	CREATE TABLE items (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/late1');
});
ok(wait_until('the launcher says it', 20,
		sub { $node->log_contains(qr/could not start the worker of database $oid{late1}/, $log_offset) }),
	'no background worker slot is free for the worker of late1');
is(worker_of('late1'), '0', 'late1 has no worker');
is(slot_of('late1'), 'false', 'CREATE EXTENSION made its replication slot, reserving WAL, held by no one');
$node->safe_psql('late1',
	"SET cocohooks.api_session = on; INSERT INTO items SELECT g FROM generate_series(1, 20) g");
# much WAL and a checkpoint after the events: without the slot it would go
$node->safe_psql('postgres', 'CREATE TABLE filler AS SELECT g, repeat(\'x\', 200) AS pad FROM generate_series(1, 100000) g');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->safe_psql('postgres', 'CHECKPOINT');
is($node->safe_psql('late1', "SELECT cocohooks.wait_for_deliveries('1 s')"), 'f',
	'nothing is delivered without a worker');

# --- DROP EXTENSION and a rolled-back CREATE EXTENSION: no slot -----------
$node->safe_psql('late2', 'CREATE EXTENSION cocohooks');
is(slot_of('late2'), 'false', 'late2: a slot as the extension is created');
$node->safe_psql('late2', 'DROP EXTENSION cocohooks');
is(slot_of('late2'), 'none', 'DROP EXTENSION with no worker running leaves no slot');
$node->safe_psql('late2', 'BEGIN; CREATE EXTENSION cocohooks; ROLLBACK;');
is(slot_of('late2'), 'none', 'nor does a CREATE EXTENSION rolled back');
my ($ret) = $node->psql('late2', 'BEGIN; CREATE EXTENSION cocohooks; SELECT 1/0; COMMIT;');
isnt($ret, 0, 'a CREATE EXTENSION in a transaction that fails');
is(slot_of('late2'), 'none', 'leaves no slot either');

# --- room for the worker, after a restart: every event arrives ------------
$node->append_conf('postgresql.conf', "max_worker_processes = 8\n");
$node->restart;
ok(wait_until('the worker of late1', 30, sub { worker_of('late1') eq '1' }), 'late1 has its worker now');
is($node->safe_psql('late1', "SELECT cocohooks.wait_for_deliveries('60 s')"), 't', 'and it finished');
my %ids;
$ids{ body_of($_)->{document}{id} } = 1 for @{ records($recv, sub { $_[0]{path} eq '/late1' }) };
is(scalar(keys %ids), 20, 'all 20 events written while it had no worker were delivered');
is(slot_of('late1'), 'true', 'the worker took the slot over');
$node->safe_psql('postgres', 'CREATE DATABASE late4');
(undef, undef, $create_err) = $node->psql('late4', 'CREATE EXTENSION cocohooks');
is($create_err, '', 'with room for its worker, CREATE EXTENSION says nothing');
$node->safe_psql('late4', 'DROP EXTENSION cocohooks');

# --- no replication slot free ----------------------------------------------
$node->safe_psql('postgres', "SELECT pg_create_physical_replication_slot('filler')");
my ($r, $o, $e) = $node->psql('late2', 'CREATE EXTENSION cocohooks');
like($e, qr/ERROR:  cocohooks cannot keep WAL for the events of this database: all replication slots are in use\n.*\nHINT:  Drop a replication slot that is not needed, or raise "max_replication_slots"/,
	'CREATE EXTENSION with no replication slot free fails, saying why');
is($node->safe_psql('late2', "SELECT count(*) FROM pg_extension WHERE extname = 'cocohooks'"), '0',
	'and creates nothing');
# a copy of late1 has the extension and its hook, but no slot: its worker
# cannot start until one is free, and takes nothing from the queue before
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE late3 TEMPLATE late1');
$node->safe_psql('late3', 'SET cocohooks.api_session = on; INSERT INTO items VALUES (1000)');
ok(wait_until('the worker of late3 fails to start', 20,
		sub { $node->log_contains(qr/\] ERROR:  cocohooks cannot keep WAL for the events of this database: all replication slots are in use/, $log_offset) }),
	'the worker of late3 finds no replication slot free');
is($node->safe_psql('late3', "SELECT cocohooks.wait_for_deliveries('3 s')"), 'f',
	'its event is not taken for finished');
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('filler')");
is($node->safe_psql('late3', "SELECT cocohooks.wait_for_deliveries('60 s')"), 't',
	'once a slot is free the worker starts and finishes');
ok(scalar(grep { body_of($_)->{document}{id} == 1000 } @{ records($recv, sub { $_[0]{path} eq '/late1' }) }),
	'the event written while it could not start is delivered');

$node->safe_psql('late1', 'DROP EXTENSION cocohooks CASCADE');
is(slot_of('late1'), 'none', 'DROP EXTENSION with a worker leaves no slot either');

# --- a database closed to connections keeps its slot and its events -------
$node->safe_psql('postgres', 'CREATE DATABASE late5');
$oid{late5} = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'late5'");
# one document's 20 updates go one at a time (ordering 'document'), each
# answered after 300 ms: most are still waiting when the server restarts
$node->safe_psql('late5', qq{
	CREATE EXTENSION cocohooks;
	CREATE TABLE items (id int PRIMARY KEY, v int);
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/slow/300/late5');
});
$node->safe_psql('late5', 'SET cocohooks.api_session = on; INSERT INTO items VALUES (1, 0);'
	  . join('', map { " UPDATE items SET v = $_;" } 1 .. 19));
$node->safe_psql('postgres', 'ALTER DATABASE late5 ALLOW_CONNECTIONS false');
$node->restart;
my $sent_before = scalar @{ records($recv, sub { $_[0]{path} eq '/slow/300/late5' }) };
note("late5: $sent_before of 20 events sent before the restart");
isnt(slot_of('late5'), 'none', 'after a restart with ALLOW_CONNECTIONS false its replication slot is kept');
ok(wait_until('late5: all 20 events', 60, sub {
		my %got;
		$got{ body_of($_)->{document}{v} } = 1
		  for @{ records($recv, sub { $_[0]{path} eq '/slow/300/late5' }) };
		return keys(%got) == 20 }),
	'and its worker, connected all the same, delivers every event');
$node->safe_psql('postgres', 'ALTER DATABASE late5 ALLOW_CONNECTIONS true');

$node->stop;
done_testing();
