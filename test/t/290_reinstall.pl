# DROP EXTENSION and a later CREATE EXTENSION in the same database: the new
# install sends nothing of the dropped one (wal mode).  The replication slot
# CREATE EXTENSION makes reserves WAL from the last checkpoint's redo point;
# the worker must not read the dropped install's events from there and send
# them again (docs/guarantees.md §7).  No checkpoint runs in between here,
# so the redo point is older than the first install's events.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
# no checkpoint by time or WAL volume during the test
my $node = new_node('reinstall',
	conf => "checkpoint_timeout = 1h\nmax_wal_size = 1GB\n");
$node->start;
$node->safe_psql('postgres', 'CHECKPOINT');
$node->safe_psql('postgres', 'CREATE TABLE docs (id int PRIMARY KEY, v int)');

sub install
{
	my ($path) = @_;
	create_extension($node);
	return $node->safe_psql('postgres',
		"SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/$path')");
}

sub at
{
	my ($path) = @_;
	return records($recv, sub { $_[0]{path} eq "/$path" });
}

# --- the first install: five events, delivered --------------------------
my $first_hook = install('first');
api_sql($node, "INSERT INTO docs SELECT g, 0 FROM generate_series(1, 5) g");
ok(wait_deliveries($node, '30 s'), 'first install: delivered');
is(scalar @{ at('first') }, 5, 'first install: five events');

# --- dropped and created again, with no checkpoint in between -------------
$node->safe_psql('postgres', 'DROP EXTENSION cocohooks CASCADE');
my $redo_before = $node->safe_psql('postgres', 'SELECT redo_lsn FROM pg_control_checkpoint()');
my $second_hook = install('second');
is($second_hook, $first_hook, 'the new hook has the id the dropped one had');
is($node->safe_psql('postgres', 'SELECT redo_lsn FROM pg_control_checkpoint()'), $redo_before,
	'no checkpoint ran: the redo point is older than the first install');
api_sql($node, "UPDATE docs SET v = 1 WHERE id = 1");
ok(wait_deliveries($node, '30 s'), 'second install: delivered');
# wait_for_deliveries() returned once the worker had read and finished the
# WAL up to the call: a resent event of the first install, older than the
# update, would have been received by then
is(scalar @{ at('first') }, 5, 'the dropped install\'s events were not sent again');
my $second = at('second');
is(scalar @$second, 1, 'the new hook got its own event only');
is(body_of($second->[0])->{document}{v}, 1, 'which is the update made after the new install');

# --- and after a restart, the new install's worker reads from its start ---
$node->restart;
wait_worker($node, 30);
api_sql($node, "UPDATE docs SET v = 2 WHERE id = 2");
ok(wait_deliveries($node, '30 s'), 'after a restart: delivered');
is(scalar @{ at('first') }, 5, 'after a restart: still nothing of the dropped install');
# a restart may send an event again (at least once, under its webhook-id)
my $ids = by_webhook_id(at('second'));
is(scalar keys %$ids, 2, 'after a restart: the new hook has its two events, no other');
is_deeply([ sort map { body_of($_->[0])->{document}{v} } values %$ids ], [ 1, 2 ],
	'after a restart: the two updates made after the new install');

$node->stop;
done_testing();
