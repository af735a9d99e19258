# Many databases on one server (docs/guarantees.md §11): a launcher starts one
# worker per database with the extension; each database has its own hooks,
# log, stats and queue space, and one database's slow receiver does not
# hold back another's deliveries.  DROP EXTENSION and DROP DATABASE stop a
# database's worker and leave nothing holding WAL; the limit is
# cocohooks.max_databases.
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
my $node = new_node('many', conf => qq{
cocohooks.max_databases = 4
cocohooks.queue_size = '256kB'
max_worker_processes = 16
restart_after_crash = on
});
$node->start;
create_extension($node);
my @dbs = qw(db1 db2 db3);
$node->safe_psql('postgres', "CREATE DATABASE $_") for @dbs;

sub workers
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_stat_activity WHERE backend_type = 'cocohooks worker'");
}

sub api_in
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, "SET cocohooks.api_session = on;\n$sql");
}

sub records_of
{
	my ($db) = @_;
	return records($recv, sub { $_[0]{path} =~ m{^/$db(/|$)} });
}

# --- a worker per database; each gets exactly its own events --------------
for my $db (@dbs)
{
	$node->safe_psql($db, qq{
		CREATE EXTENSION cocohooks;
		CREATE TABLE items (id int PRIMARY KEY, db text NOT NULL, at float8);
		SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/$db');
	});
}
ok(wait_until('four workers', 30, sub { workers() eq 'db1,db2,db3,postgres' }),
	'a worker for each database with the extension');
for my $i (0 .. $#dbs)
{
	my $n = 10 * ($i + 1);
	api_in($dbs[$i], "INSERT INTO items SELECT g, '$dbs[$i]' FROM generate_series(1, $n) g");
}
for my $i (0 .. $#dbs)
{
	my $db = $dbs[$i];
	my $n = 10 * ($i + 1);
	is($node->safe_psql($db, "SELECT cocohooks.wait_for_deliveries('30 s')"), 't',
		"$db: wait_for_deliveries sees its own events finished");
	my $recs = records_of($db);
	is(scalar(@$recs), $n, "$db: its $n events arrived");
	is(scalar(grep { body_of($_)->{document}{db} ne $db } @$recs), 0,
		"$db: none of another database's events reached its hook");
	is($node->safe_psql($db, 'SELECT queued || \',\' || delivered FROM cocohooks.stats'),
		"$n,$n", "$db: cocohooks.stats shows its own figures");
	is($node->safe_psql($db, 'SELECT count(*) FROM cocohooks.deliveries'),
		'0', "$db: its own delivery log (failures only by default: none)");
}

# --- a slow receiver in one database does not hold back another ------------
# db1's hook answers after 25 s, and db1 writes more than its share of the
# queue; db2's events still arrive as fast as before.
# 20 events in db2, each its own transaction, each row holding the time it
# was written: returns how many arrived and the longest write-to-receipt.
sub latency_of_db2
{
	my ($first) = @_;
	api_in('db2', join('', map {
		"INSERT INTO items VALUES ($_, 'db2', extract(epoch FROM clock_timestamp()));\n" }
		  $first .. $first + 19));
	wait_until('db2 events', 20, sub {
		(grep { body_of($_)->{document}{id} >= $first } @{ records_of('db2') }) >= 20 });
	my @lat = map { $_->{received_at} - body_of($_)->{document}{at} }
	  grep { body_of($_)->{document}{id} >= $first } @{ records_of('db2') };
	my $max = 0;
	$max = $_ > $max ? $_ : $max for @lat;
	return (scalar(@lat), $max);
}
my ($n_base, $max_base) = latency_of_db2(1000);
# the slow receiver is a receiver of its own: its 25 s answers hold its
# connections only
my $slow_recv = start_receiver();
$node->safe_psql('db1', qq{
	CREATE TABLE slow (id int PRIMARY KEY, pad text);
	SELECT cocohooks.register_hook('slow', 'post_save', '$slow_recv->{url}/slow/25000',
		max_retries => 0);
});
api_in('db1', "INSERT INTO slow SELECT g, repeat('x', 500) FROM generate_series(1, 3000) g");
wait_until('db1 requests in flight', 10,
	sub { $node->safe_psql('db1', 'SELECT in_flight FROM cocohooks.stats') > 0 });
my ($n_slow, $max_slow) = latency_of_db2(2000);
is($n_slow, 20, 'db2: its 20 events arrived while db1 waits on a 25 s receiver');
diag(sprintf('db2, 20 events, longest write-to-receipt: %.1f ms alone, %.1f ms with db1 slow and its queue share full',
	1000 * $max_base, 1000 * $max_slow));
cmp_ok($max_slow, '<', $max_base + 0.1, 'db2 is delayed by less than 100 ms');
# db1's slow events fail from now on (connection refused), on their own
stop_receiver($slow_recv);
is($node->safe_psql('db2', 'SELECT dropped FROM cocohooks.stats'), '0', 'db2: nothing dropped');

# --- DROP EXTENSION stops that database's worker --------------------------
my $oid3 = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'db3'");
ok($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cocohooks_$oid3'") == 1,
	'db3 has its replication slot (wal mode)');
$node->safe_psql('db3', 'DROP EXTENSION cocohooks CASCADE');
ok(wait_until('db3 worker gone', 10, sub { workers() !~ /db3/ }),
	'DROP EXTENSION stops the worker of db3');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cocohooks_$oid3'"),
	'0', 'and its replication slot is gone');

# --- the limit: four databases at most ------------------------------------
$node->safe_psql('db3', 'CREATE EXTENSION cocohooks');
ok(wait_until('db3 worker back', 30, sub { workers() =~ /db3/ }),
	'CREATE EXTENSION again starts a worker for db3');
$node->safe_psql('postgres', 'CREATE DATABASE db5');
my ($ret, $out, $err) = $node->psql('db5', 'CREATE EXTENSION cocohooks');
isnt($ret, 0, 'a fifth database cannot have the extension');
like($err, qr/ERROR:  cocohooks cannot serve another database/, 'an ERROR says so');
like($err, qr/cocohooks\.max_databases/, 'and names cocohooks.max_databases');
is($node->safe_psql('db5', "SELECT count(*) FROM pg_extension WHERE extname = 'cocohooks'"),
	'0', 'nothing was created in db5');

# --- statements that need a database alone do not wait on its worker ------
my $t0 = time();
($ret, $out, $err) = $node->psql('postgres', 'CREATE DATABASE db3copy TEMPLATE db3');
is($ret, 0, 'CREATE DATABASE with a served database as template works') or diag($err);
ok(wait_until('db3 worker back after the copy', 30, sub { workers() =~ /db3/ }),
	'and db3 gets its worker back');
$node->safe_psql('postgres', 'DROP DATABASE db3copy');

$t0 = time();
($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE db3');
is($ret, 0, 'DROP DATABASE of a served database works') or diag($err);
my $took = time() - $t0;
cmp_ok($took, '<', 5, sprintf('and does not wait on its worker (%.2f s)', $took));
my $oid2 = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'db2'");
$t0 = time();
($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE db2 WITH (FORCE)');
is($ret, 0, 'DROP DATABASE ... WITH (FORCE) works') or diag($err);
cmp_ok(time() - $t0, '<', 5, 'and does not wait either');
is(workers(), 'db1,postgres', 'the dropped databases have no worker');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ('cocohooks_$oid2', 'cocohooks_$oid3')"),
	'0', 'nor a replication slot holding WAL');
($ret, $out, $err) = $node->psql('db5', 'CREATE EXTENSION cocohooks');
is($ret, 0, 'their slots are free again: db5 can have the extension') or diag($err);

# --- a restart brings every worker back -----------------------------------
$node->restart;
ok(wait_until('workers after restart', 30, sub { workers() eq 'db1,db5,postgres' }),
	'after a restart every database with the extension has its worker again');

# ALTER DATABASE ... RENAME needs the database alone too
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE db5 RENAME TO db5r');
is($ret, 0, 'ALTER DATABASE ... RENAME of a served database works') or diag($err);
ok(wait_until('renamed database served', 30, sub { workers() eq 'db1,db5r,postgres' }),
	'and its worker is back, under the new name');
$node->safe_psql('postgres', 'ALTER DATABASE db5r RENAME TO db5');
ok(wait_until('db5 served again', 30, sub { workers() eq 'db1,db5,postgres' }),
	'renamed back, served again');

# --- a crash loses nothing in any database (wal mode) ---------------------
$node->safe_psql('db5', qq{
	CREATE TABLE items (id int PRIMARY KEY, db text NOT NULL);
	SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/slow/100?db5');
});
$node->safe_psql('db1', qq{
	CREATE TABLE crash (id int PRIMARY KEY, db text NOT NULL);
	SELECT cocohooks.register_hook('crash', 'post_save', '$recv->{url}/slow/100?db1');
});
api_in('db5', "INSERT INTO items SELECT g, 'db5' FROM generate_series(1, 500) g");
api_in('db1', "INSERT INTO crash SELECT g, 'db1' FROM generate_series(1, 500) g");
my $ckpt = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
kill 'KILL', $ckpt;
ok(wait_server($node, 60), 'the server restarts after a crash');
for my $db ('db5', 'db1')
{
	ok(wait_until("$db: all 500 events", 120, sub {
			my %docs;
			$docs{ body_of($_)->{document}{id} } = 1
			  for @{ records($recv, sub { $_[0]{path} eq "/slow/100?$db" }) };
			return keys(%docs) == 500 }),
		"$db: all 500 committed events delivered after the crash");
}

# --- fewer slots than databases with the extension: said, not silent -----
$node->append_conf('postgresql.conf', "cocohooks.max_databases = 2\n");
my $log_offset = -s $node->logfile;
$node->restart;
ok(wait_until('the warning', 30, sub {
		$node->log_contains(qr/WARNING:  cocohooks cannot look for the extension in 1 more databases/, $log_offset) }),
	'max_databases lowered below the databases with the extension: a WARNING says so');
is(scalar(split /,/, workers()), 2, 'and two databases are served');
# a write in a database left out says that its events are not sent
my ($unserved) = grep {
	my $db = $_;
	$node->safe_psql($db, "SELECT count(*) FROM pg_extension WHERE extname = 'cocohooks'") eq '1'
	  && !grep { $_ eq $db } split /,/, workers()
} split /\n/, $node->safe_psql('postgres',
	'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1');
ok(defined $unserved, 'a database with the extension is left out');
$node->safe_psql($unserved, qq{
	CREATE TABLE left_out (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('left_out', 'post_save', '$recv->{url}/left_out');
});
my (undef, undef, $left_err) = $node->psql($unserved,
	'SET cocohooks.api_session = on; INSERT INTO left_out VALUES (1); INSERT INTO left_out VALUES (2)');
like($left_err, qr/WARNING:  cocohooks does not deliver the events of this database\nDETAIL:  2 databases are served, as many as "cocohooks\.max_databases" allows/,
	'its write succeeds with a WARNING naming the setting');
is(() = $left_err =~ /WARNING:  cocohooks does not deliver/g, 1, 'once per session');
is($node->safe_psql($unserved, 'SELECT count(*) FROM left_out'), '2', 'and the rows are written');

$node->stop;

# --- memory mode: a full queue share does not take another's room ----------
# db1's worker takes 16 events at a time from behind a 25 s receiver, so
# its 3,000 events (1.5 MB) fill what it may have of the 256 kB pool and
# the rest is dropped; db2 keeps its reserve (a quarter of the pool, 64 kB)
# and its 50 events (about 35 kB) fit in it.
my $slow2 = start_receiver();
my $mem = new_node('many_memory', conf => qq{
cocohooks.durability = memory
cocohooks.max_databases = 4
cocohooks.queue_size = '256kB'
cocohooks.max_concurrent_deliveries = 16
max_worker_processes = 16
});
$mem->start;
for my $db ('db1', 'db2')
{
	$mem->safe_psql('postgres', "CREATE DATABASE $db");
	my $url = $db eq 'db1' ? "$slow2->{url}/slow/25000" : "$recv->{url}/mem_$db";
	$mem->safe_psql($db, qq{
		CREATE EXTENSION cocohooks;
		CREATE TABLE items (id int PRIMARY KEY, pad text);
		SELECT cocohooks.register_hook('items', 'post_save', '$url');
	});
}
$mem->safe_psql('db1', "SET cocohooks.api_session = on; INSERT INTO items SELECT g, repeat('x', 500) FROM generate_series(1, 3000) g");
cmp_ok($mem->safe_psql('db1', 'SELECT dropped FROM cocohooks.stats'), '>', 0,
	'memory mode: db1 filled its share of the queue (and dropped the rest)');
$mem->safe_psql('db2', "SET cocohooks.api_session = on; INSERT INTO items SELECT g, repeat('y', 500) FROM generate_series(1, 50) g");
is($mem->safe_psql('db2', "SELECT cocohooks.wait_for_deliveries('30 s')"), 't',
	'memory mode: db2 delivered while db1 is stuck');
is($mem->safe_psql('db2', 'SELECT dropped || \',\' || delivered FROM cocohooks.stats'), '0,50',
	'memory mode: db2 dropped nothing: its reserve was kept for it');
stop_receiver($slow2);
$mem->stop;
done_testing();
