# Retries parked durably (cocohooks.retry_queue): a receiver down longer
# than the worker's in-memory bound (16 x max_concurrent_deliveries
# retries waiting) loses no delivery, a crash loses no parked one, and one
# failing document of an ordered hook holds back neither other hooks nor
# its own order.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

# 4 deliveries at once: at most 64 retries wait in memory, and 16
# deliveries in documents' lines; retries every 2 s at most
my $node = new_node('parked',
	conf => "cocohooks.max_concurrent_deliveries = 4\n"
	  . "cocohooks.retry_max_backoff = 2000\nrestart_after_crash = on\n");
$node->start;
create_extension($node);

sub parked
{
	return $node->safe_psql('postgres', 'SELECT parked FROM cocohooks.stats');
}

sub failed_rows
{
	my ($hook) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook AND NOT success");
}

sub distinct_ids
{
	my ($recv, $path) = @_;
	return scalar keys %{ by_webhook_id(records($recv, sub { $_[0]{path} eq $path })) };
}

# --- an outage longer than the in-memory bound: 1,000 events -------------
my $recv = start_receiver();
$node->safe_psql('postgres', 'CREATE TABLE items (id int PRIMARY KEY)');
my $hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('items', 'post_save', '$recv->{url}/items', max_retries => 12)");
stop_receiver($recv);
api_sql($node, 'INSERT INTO items SELECT generate_series(1, 1000)');
my $max_parked = 0;
ok(wait_until('deliveries parked', 30, sub {
			my $p = parked();
			$max_parked = $p if $p > $max_parked;
			return $p >= 500;
		}),
	'with the receiver down, deliveries past the in-memory bound are parked');
$recv = restart_receiver($recv);
is($node->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('120 s')"), 't',
	'wait_for_deliveries waits for the parked deliveries too');
is(distinct_ids($recv, '/items'), 1000, 'all 1,000 events were delivered once the receiver was back');
is(failed_rows($hook), '0', 'none failed');
is(parked(), '0', 'nothing is left parked');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.retry_queue'), '0',
	'the parked rows are gone');

# --- a crash with deliveries parked: all of them arrive after it ---------
$node->safe_psql('postgres', 'TRUNCATE items');
stop_receiver($recv);
api_sql($node, 'INSERT INTO items SELECT generate_series(2001, 2300)');
ok(wait_until('deliveries parked before the crash', 30, sub { parked() >= 100 }),
	'deliveries are parked');
my $pid = worker_pid($node);
kill 'KILL', $pid;
ok(wait_server($node, 60), 'the server is back after the worker was killed');
wait_worker($node, 30);
$recv = restart_receiver($recv);
is($node->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('120 s')"), 't',
	'after the crash: finished');
my %ids;
for my $r (@{ records($recv, sub { $_[0]{path} eq '/items' }) })
{
	my $id = body_of($r)->{document}{id};
	$ids{$id} = 1 if $id > 2000;
}
is(scalar keys %ids, 300, 'after the crash: every event arrived');
is(failed_rows($hook), '0', 'after the crash: none failed');

# --- one failing document of an ordered hook ------------------------------
# hook down: ordered, its receiver down; hook up: another receiver.  2,000
# updates of one document and 20 of another.
my $down = start_receiver();
my $up = start_receiver();
$node->safe_psql('postgres', 'CREATE TABLE docs (id int PRIMARY KEY, v int)');
$node->safe_psql('postgres', 'INSERT INTO docs VALUES (1, 0), (2, 0)');
my $down_hook = $node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('docs', 'post_save', '$down->{url}/down', max_retries => 12, ordering => 'document')");
$node->safe_psql('postgres',
	"SELECT cocohooks.register_hook('docs', 'post_save', '$up->{url}/up', ordering => 'document')");
stop_receiver($down);
api_sql($node, q{
	DO $$
	BEGIN
		FOR i IN 1..2000 LOOP
			UPDATE docs SET v = i WHERE id = 1;
			IF i % 100 = 0 THEN
				UPDATE docs SET v = i WHERE id = 2;
			END IF;
			COMMIT;
		END LOOP;
	END $$;
});
my $t0 = time();
ok(wait_until('the other hook\'s deliveries', 60,
		sub { distinct_ids($up, '/up') >= 2020 }),
	'the other hook got all 2,020 events while the ordered hook\'s receiver was down');
note(sprintf('the other hook caught up %.1f s after the writes', time() - $t0));
ok(parked() > 0, 'the failing document\'s deliveries are parked');
$down = restart_receiver($down);
is($node->safe_psql('postgres', "SELECT cocohooks.wait_for_deliveries('180 s')"), 't',
	'ordered: finished once the receiver is back');
my (%last, $back, %got);
$back = 0;
for my $r (@{ records($down, sub { $_[0]{path} eq '/down' }) })
{
	my $b = body_of($r);
	my ($doc, $v) = ($b->{document}{id}, $b->{document}{v});
	$back++ if defined $last{$doc} && $v < $last{$doc};
	$last{$doc} = $v;
	$got{"$doc/$v"} = 1;
}
is($back, 0, 'ordered: no document went back in its history, parked or not');
is(scalar keys %got, 2020, 'ordered: every version of both documents arrived');
is(failed_rows($down_hook), '0', 'ordered: none failed');

$node->stop;
done_testing();
