# cocohooks.durability = memory, the 0.1 behaviour: events live in shared
# memory only; PREPARE TRANSACTION with pending post_* events is refused;
# no replication slot is kept, and a slot left by wal mode is dropped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('memory', conf => "max_prepared_transactions = 2\n");
$node->start;
create_extension($node);
my $slot_sql = q{SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'cocohooks%'};
is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'wal', 'wal is the default');
is($node->safe_psql('postgres', $slot_sql), '1', 'wal mode keeps a slot');

$node->append_conf('postgresql.conf', "cocohooks.durability = memory\n");
$node->restart;
ok(defined wait_worker($node, 30), 'the worker runs in memory mode');
is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'memory',
	'stats.durability shows memory');
ok(wait_until('the slot of wal mode is dropped', 10, sub { $node->safe_psql('postgres', $slot_sql) eq '0' }),
	'memory mode drops the slot wal mode left, so nothing holds WAL');

$node->safe_psql('postgres', qq{
	CREATE TABLE m (id int PRIMARY KEY);
	SELECT cocohooks.register_hook('m', 'post_save', '$recv->{url}/m');
});
api_sql($node, 'INSERT INTO m VALUES (1)');
ok(wait_deliveries($node), 'delivered in memory mode');
my ($rec) = @{ records($recv) };
like($rec->{headers}{'webhook-id'}, qr/^msg_[0-9a-f]+_\d+_\d+$/, 'webhook-id of a queued event');

my ($ret, $out, $err) = $node->psql('postgres', q{
	SET cocohooks.api_session = on;
	BEGIN;
	INSERT INTO m VALUES (2);
	PREPARE TRANSACTION 'mem_p';
});
like($err, qr/ERROR:  cannot PREPARE a transaction that has pending cocohooks events/,
	'PREPARE TRANSACTION with pending post_* events is refused in memory mode');
like($err, qr/HINT:  .*"cocohooks.durability"/, 'the hint names cocohooks.durability');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', 'nothing was prepared');
is($node->safe_psql('postgres', 'SELECT count(*) FROM m WHERE id = 2'), '0', 'the transaction rolled back');

$node->stop;
done_testing();
