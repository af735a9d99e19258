# Failover loses nothing (docs/guarantees.md §12): a streaming standby,
# synchronous or asynchronous, is promoted after the primary is killed
# (kill -9) with committed events outstanding (and one transaction
# prepared), and the promoted server delivers every one of them that
# reached it, under the same webhook-ids.
# The standby's follower keeps a slot per database at the primary's last
# progress mark; DROP EXTENSION on the primary drops the standby's slot.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $conf = qq{
shared_preload_libraries = 'cocohooks'
cocohooks.allowed_networks = '127.0.0.0/8, ::1'
cocohooks.max_concurrent_deliveries = 4
cocohooks.retry_max_backoff = 2000
max_connections = 30
restart_after_crash = off
max_prepared_transactions = 5
};

sub slot_on
{
	my ($node, $dboid) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(max(restart_lsn::text), '') FROM pg_replication_slots WHERE slot_name = 'cocohooks_$dboid'");
}

# A primary with a hook on items, one event delivered, and a standby made
# from its backup that follows the primary's progress marks.
sub setup
{
	my ($name, $recv, $path, $sync, $no_first_event) = @_;
	my $primary = PostgreSQL::Test::Cluster->new("${name}_primary");
	# without a first event, no mark may follow the start mark: the backup's
	# switch to a new WAL segment must not move the WAL by a mark's distance
	# (16 MB), so segments are 1 MB
	$primary->init(allows_streaming => 1,
		$no_first_event ? (extra => ['--wal-segsize=1']) : ());
	$primary->append_conf('postgresql.conf', $conf);
	$primary->start;
	my $before_worker = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	$primary->safe_psql('postgres', 'CREATE EXTENSION cocohooks');
	wait_worker($primary, 30);
	$primary->safe_psql('postgres', qq{
		CREATE TABLE items (id int PRIMARY KEY, batch int);
		SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}$path', max_retries => 20);
	});
	# without a first event, the worker's start mark goes before the backup
	# (its checkpoint): the standby then has no mark before the first event
	ok( wait_until("$name start mark", 30, sub { wal_messages($primary, 'cocohooks.progress', $before_worker) > 0 }),
		"$name: the primary's worker marks its start")
	  if $no_first_event;
	$primary->backup('b');
	my $standby = PostgreSQL::Test::Cluster->new("${name}_standby");
	$standby->init_from_backup($primary, 'b', has_streaming => 1);
	$standby->start;
	if ($sync)
	{
		$primary->append_conf('postgresql.conf',
			"synchronous_standby_names = '${name}_standby'\n");
		$primary->reload;
	}
	my $dboid = $primary->safe_psql('postgres',
		"SELECT oid FROM pg_database WHERE datname = 'postgres'");

	return ($primary, $standby, $dboid) if $no_first_event;

	# an event delivered: its progress mark makes the standby's slot
	api_sql($primary, 'INSERT INTO items VALUES (0, 0)');
	ok(wait_deliveries($primary), "$name: the first event is delivered");
	ok( wait_until("$name standby slot", 30, sub { slot_on($standby, $dboid) ne '' }),
		"$name: the standby keeps a slot for the database, made from a progress mark");
	return ($primary, $standby, $dboid);
}

# Every document of items (ids 1..$n) arrived at $path, each under one
# webhook-id; returns the number of requests.
sub check_all_arrived
{
	my ($name, $recv, $path, $n, $node) = @_;
	my $docs = {};
	ok( wait_until("$name: $n documents", 180, sub {
				$docs = {};
				for my $r (@{ records($recv, sub { $_[0]{path} eq $path }) })
				{
					my $id = body_of($r)->{document}{id};
					push @{ $docs->{$id} }, $r->{headers}{'webhook-id'} if $id > 0;
				}
				return keys %$docs >= $n;
			}),
		"$name: every committed event is delivered by the promoted server");
	is(scalar(keys %$docs), $n, "$name: $n documents, no more");
	my @two_ids = grep { my %u = map { $_ => 1 } @{ $docs->{$_} }; keys %u > 1 } keys %$docs;
	is(scalar @two_ids, 0, "$name: an event sent again keeps its webhook-id");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.deliveries WHERE NOT success'),
		'0', "$name: none failed");
	my $requests = 0;
	$requests += @{ $docs->{$_} } for keys %$docs;
	return $requests;
}

# --- synchronous standby; a slow receiver: part delivered, part not -------
{
	my $recv = start_receiver();
	my ($primary, $standby, $dboid) = setup('sync', $recv, '/slow/60', 1);
	my $before = slot_on($standby, $dboid);
	api_sql($primary, "INSERT INTO items SELECT g, 1 FROM generate_series(1, 100) g");
	ok(wait_until('first 100', 60, sub { @{ records($recv) } >= 101 }),
		'sync: the first 100 events are delivered');
	ok( wait_until('standby slot moves', 30, sub { slot_on($standby, $dboid) ne $before }),
		'sync: the standby slot moves with the progress marks');
	for my $b (2 .. 10)
	{
		my $lo = ($b - 1) * 100 + 1;
		my $hi = $b * 100;
		api_sql($primary, "INSERT INTO items SELECT g, $b FROM generate_series($lo, $hi) g");
	}
	ok( wait_until('some delivered', 60, sub { @{ records($recv) } > 150 }),
		'sync: the primary delivers part of the other 900 events');
	$primary->kill9;
	usleep(500_000);    # the old primary's processes see it gone
	my $delivered_before = scalar @{ records($recv) } - 1;
	$standby->promote;
	wait_worker($standby, 60);
	my $requests = check_all_arrived('sync', $recv, '/slow/60', 1000, $standby);
	note("sync: $delivered_before of 1,000 delivered before the failover; "
		  . ($requests - $delivered_before) . " requests after it");
	ok($delivered_before < 1000, 'sync: the primary died with events outstanding');
	like(slurp_file($standby->logfile), qr/cocohooks standby follower stops: the server was promoted/,
		'sync: the follower stops at the promotion');
	$standby->stop;
	stop_receiver($recv);
}

# --- asynchronous standby; the receiver is down: retries parked ------------
{
	my $recv = start_receiver();
	my ($primary, $standby, $dboid) = setup('async', $recv, '/async', 0);

	# a second database whose extension is dropped: the standby's slot goes
	$primary->safe_psql('postgres', 'CREATE DATABASE other');
	$primary->safe_psql('other', qq{
		CREATE EXTENSION cocohooks;
		CREATE TABLE t (id int PRIMARY KEY);
		SELECT cocohooks.register_hook('t', 'post_save', '$recv->{url}/other');
	});
	$primary->safe_psql('other', 'SET cocohooks.api_session = on; INSERT INTO t VALUES (1)');
	my $other = $primary->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'other'");
	ok(wait_until('other slot on standby', 30, sub { slot_on($standby, $other) ne '' }),
		'async: a second database gets a standby slot of its own');
	$primary->safe_psql('other', 'DROP EXTENSION cocohooks CASCADE');
	ok(wait_until('other slot dropped', 30, sub { slot_on($standby, $other) eq '' }),
		'async: DROP EXTENSION on the primary drops the standby slot');

	stop_receiver($recv);
	for my $b (1 .. 10)
	{
		my $lo = ($b - 1) * 100 + 1;
		my $hi = $b * 100;
		api_sql($primary, "INSERT INTO items SELECT g, $b FROM generate_series($lo, $hi) g");
	}
	ok( wait_until('parked on the primary', 60, sub {
				$primary->safe_psql('postgres', 'SELECT parked FROM cocohooks.stats') >= 500;
			}),
		'async: with the receiver down, the primary parks retries');
	$primary->wait_for_catchup($standby, 'replay');
	$primary->kill9;
	usleep(500_000);    # the old primary's processes see it gone
	$standby->promote;
	$recv = restart_receiver($recv);
	wait_worker($standby, 60);
	check_all_arrived('async', $recv, '/async', 1000, $standby);
	# a parked row goes in the worker's next transaction after its success
	ok( wait_until('parked rows gone', 30, sub {
				$standby->safe_psql('postgres', 'SELECT parked FROM cocohooks.stats') eq '0';
			}),
		'async: no parked retry is left');
	$standby->stop;
}

# --- a new standby, the primary killed right after the first events -------
# no progress mark has reached the standby yet: the slot it makes at the
# first event it replays keeps them; a transaction prepared on the old
# primary is committed on the new one
{
	my $recv = start_receiver();
	my ($primary, $standby, $dboid) = setup('fresh', $recv, '/fresh', 0, 1);
	is(slot_on($standby, $dboid), '', 'fresh: the standby has no slot before the first event');
	stop_receiver($recv);
	api_sql($primary, "INSERT INTO items SELECT g, 1 FROM generate_series(1, 500) g");
	api_sql($primary, "INSERT INTO items SELECT g, 2 FROM generate_series(501, 990) g");
	# a prepared transaction with events, committed on the promoted server
	api_sql($primary, "BEGIN; INSERT INTO items SELECT g, 3 FROM generate_series(991, 1000) g; "
		  . "PREPARE TRANSACTION 'p1'");
	$primary->wait_for_catchup($standby, 'replay');
	$primary->kill9;
	usleep(500_000);
	ok(wait_until('fresh standby slot', 10, sub { slot_on($standby, $dboid) ne '' }),
		'fresh: the standby has a slot for the database');
	like(slurp_file($standby->logfile),
		qr/cocohooks standby made replication slot "cocohooks_$dboid" to keep WAL from .*\n.*DETAIL:  The position is that of the first event/,
		'fresh: the standby made it at the first event it replayed');
	$standby->promote;
	$recv = restart_receiver($recv);
	wait_worker($standby, 60);
	$standby->safe_psql('postgres', "COMMIT PREPARED 'p1'");
	check_all_arrived('fresh', $recv, '/fresh', 1000, $standby);
	$standby->stop;
}

done_testing();
