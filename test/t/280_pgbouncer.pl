# Tagging sessions through a connection pooler: the distribution's PgBouncer
# in transaction mode (one server connection per database and role, so the
# next client gets the same server connection) in front of a cluster with
# cocohooks, against a real receiver.  Proves the README's advice:
#  1. SET LOCAL in the transaction fires, and does not carry over to the next
#     client on the same server connection;
#  2. ALTER ROLE ... SET for a dedicated role fires for that role only;
#  3. options=-c cocohooks.api_session=on is refused by PgBouncer, and with
#     ignore_startup_parameters = options it connects but is not tagged (nor,
#     in PgBouncer 1.20 and later, with it in track_extra_parameters);
#  4. a session-level SET stays on the server connection: the next client's
#     untagged write fires (the pitfall; PgBouncer does not reset server
#     connections between transactions by default, and case 1 does not
#     depend on a reset);
#  5. server_reset_query_always = 1 (DISCARD ALL after every transaction)
#     would stop the leak of case 4; nothing above relies on it.
# Every "did not fire" is checked by writing a tagged marker row after it and
# waiting for the marker and for cocohooks.wait_for_deliveries(): an event of
# the earlier write would have been delivered by then.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

# pgbouncer is one of the suite's packages (test/deps, test/pg-provide):
# without it this test fails, it does not skip
my ($pgbouncer) = grep { -x $_ }
  ((map { "$_/pgbouncer" } split /:/, ($ENV{PATH} // '')), '/usr/sbin/pgbouncer');
if (!$pgbouncer)
{
	fail('pgbouncer is installed (apt package pgbouncer, see test/deps)');
	done_testing();
	exit 1;
}
my ($bouncer_version) =
  (`$pgbouncer --version 2>&1` =~ /PgBouncer (\d+\.\d+)/i);
$bouncer_version //= '0.0';
note("$pgbouncer, version $bouncer_version");
my ($bv_major, $bv_minor) = split /\./, $bouncer_version;
my $bouncer_parses_options = $bv_major > 1 || ($bv_major == 1 && $bv_minor >= 20);

my $recv = start_receiver();
# log_statement = all: the server log shows whether PgBouncer sent DISCARD ALL
my $node = new_node('pgbouncer', conf => "log_statement = 'all'\n");
$node->start;
create_extension($node);
$node->safe_psql('postgres', qq{
	CREATE TABLE docs (id int PRIMARY KEY, v text);
	SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/docs');
	CREATE ROLE api_role LOGIN;
	CREATE ROLE other_role LOGIN;
	GRANT INSERT, SELECT ON docs TO api_role, other_role;
	ALTER ROLE api_role SET cocohooks.api_session = on;
});

# --- PgBouncer: transaction mode, one server connection per pool -----------
my $dir = PostgreSQL::Test::Utils::tempdir('pgbouncer');
my ($pg_host, $pg_port) = ($node->host, $node->port);
PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt",
	join('', map { qq{"$_" ""\n} } qw(postgres api_role other_role)));
my @bouncers;
my $bport;    # the main PgBouncer's

# Starts a pgbouncer on 127.0.0.1 with $name.ini, the settings below and
# $extra; returns its port.  Stopped at the end of the test.
sub start_bouncer
{
	my ($name, $extra) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	PostgreSQL::Test::Utils::append_to_file("$dir/$name.ini", <<"EOF" . ($extra // ''));
[databases]
postgres = host=$pg_host port=$pg_port dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
; the defaults, written out: DISCARD ALL only when a client leaves in
; session mode, never in transaction mode
server_reset_query = DISCARD ALL
server_reset_query_always = 0
EOF
	push @bouncers,
	  {
		name => $name,
		log => "$dir/$name.log",
		handle => IPC::Run::start([ $pgbouncer, "$dir/$name.ini" ],
			'<', \undef, '>', "$dir/$name.log", '2>&1')
	  };
	return $port;
}

END
{
	local $?;
	eval { $_->{handle}->kill_kill(grace => 2) } for @bouncers;
}

# psql through PgBouncer on 127.0.0.1, one -c per statement (each its own
# message, as an application sends them); returns (exit code, stdout, stderr)
sub bouncer_psql
{
	my ($statements, %opts) = @_;
	my $connstr = 'host=127.0.0.1 port=' . ($opts{port} // $bport)
	  . ' dbname=' . ($opts{dbname} // 'postgres')
	  . ' user=' . ($opts{user} // 'postgres')
	  . (defined $opts{extra} ? " $opts{extra}" : '');
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(
			[
				$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1',
				'-d', $connstr, map { ('-c', $_) } @$statements
			],
			'<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout(60));
	};
	chomp $out;
	return ($ok ? 0 : 1, $out, $err);
}

# the same, expected to succeed: its output lines
sub bouncer_lines
{
	my ($what, $statements, %opts) = @_;
	my ($ret, $out, $err) = bouncer_psql($statements, %opts);
	is($ret, 0, $what) or diag($err);
	return split /\n/, $out;
}

$bport = start_bouncer('pgbouncer');
ok(wait_until('PgBouncer to accept connections', 30,
		sub { (bouncer_psql(['SELECT 1']))[0] == 0 }),
	'PgBouncer runs in front of the cluster');

# rows of docs delivered so far: { id => count }
sub delivered
{
	my %ids;
	$ids{ body_of($_)->{document_id} }++
	  for @{ records($recv, sub { $_[0]{path} eq '/docs' }) };
	return \%ids;
}

sub arrives
{
	my ($id) = @_;
	return wait_until("delivery of row $id", 30, sub { delivered()->{$id} });
}

# Asserts that row $id's write fired nothing: a tagged marker row written
# after it (directly, not through PgBouncer) is delivered, and once every
# event is delivered row $id has no delivery.
my $next_marker = 1000;
sub did_not_fire
{
	my ($id, $what) = @_;
	my $marker = ++$next_marker;
	api_sql($node, "INSERT INTO docs VALUES ($marker, 'marker')");
	ok(arrives($marker), "marker row $marker written after row $id is delivered");
	ok(wait_deliveries($node), 'every event is delivered');
	ok(!delivered()->{$id}, $what);
}

# --- 1. SET LOCAL: that transaction only -------------------------------------
my ($pid_a) = bouncer_lines('SET LOCAL transaction through PgBouncer',
	[
		'BEGIN', 'SET LOCAL cocohooks.api_session = on',
		"INSERT INTO docs VALUES (1, 'set local')", 'SELECT pg_backend_pid()',
		'COMMIT'
	]);
ok(arrives(1), 'SET LOCAL through PgBouncer fires: row 1 is delivered');
my ($show_b, $pid_b) = bouncer_lines('next client, untagged',
	[
		'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (2, 'next client')",
		'SELECT pg_backend_pid()'
	]);
is($pid_b, $pid_a, 'the next client got the same server connection');
is($show_b, 'off', 'SET LOCAL did not stay on the server connection');
did_not_fire(2, "the next client's untagged write fired nothing");

# --- 2. ALTER ROLE ... SET for a dedicated role ------------------------------
my ($show_api) = bouncer_lines('api_role through PgBouncer',
	[ 'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (10, 'api_role')" ],
	user => 'api_role');
is($show_api, 'on', 'api_role sessions are tagged by the role setting');
ok(arrives(10), "api_role's write fires: row 10 is delivered");
my ($show_other) = bouncer_lines('other_role through PgBouncer',
	[ 'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (11, 'other_role')" ],
	user => 'other_role');
is($show_other, 'off', 'other_role sessions are not tagged');
did_not_fire(11, "other_role's write through the same PgBouncer fired nothing");

# --- 3. options=-c cocohooks.api_session=on ------------------------------------
# (before case 4, whose session-level SET tags the server connection)
my $options = "options='-c cocohooks.api_session=on'";
my ($ret, $out, $err) = bouncer_psql(["INSERT INTO docs VALUES (20, 'options')"],
	extra => $options);
isnt($ret, 0, 'PgBouncer refuses a connection with options=-c cocohooks.api_session=on');
# PgBouncer before 1.20 refuses the options parameter itself; later ones
# read the -c settings in it and refuse one they do not track
like($err,
	$bouncer_parses_options
	? qr/unsupported startup parameter in options: cocohooks\.api_session/
	: qr/unsupported startup parameter: options/,
	"PgBouncer's error names the unsupported startup parameter");

($ret, $out, $err) = bouncer_psql(['SET ignore_startup_parameters = options'],
	dbname => 'pgbouncer');
is($ret, 0, 'ignore_startup_parameters = options on the admin console') or diag($err);
my ($show_opt, $pid_opt) = bouncer_lines(
	'with ignore_startup_parameters = options the connection is accepted',
	[
		'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (21, 'options ignored')",
		'SELECT pg_backend_pid()'
	],
	extra => $options);
is($pid_opt, $pid_a, 'it got the same server connection as case 1');
is($show_opt, 'off', 'the ignored options do not reach the server');
did_not_fire(21, 'the write of a connection with ignored options fired nothing');

# PgBouncer 1.20 and later keep the settings of options per client for the
# parameters in track_extra_parameters, and set them on the server connection
# a client gets; but only parameters the server reports to clients can be
# tracked, and cocohooks.api_session is not one: the connection is accepted
# and its writes are not tagged
if ($bouncer_parses_options)
{
	# (in the configuration: SET track_extra_parameters on the admin console
	# answers SET, but the options of new connections are refused as before)
	my $tport = start_bouncer('tracking', "track_extra_parameters = cocohooks.api_session\n");
	ok(wait_until('the second PgBouncer to accept connections', 30,
			sub { (bouncer_psql(['SELECT 1'], port => $tport))[0] == 0 }),
		'a second PgBouncer runs, with track_extra_parameters = cocohooks.api_session');
	my ($show_tracked) = bouncer_lines(
		'with track_extra_parameters = cocohooks.api_session the connection is accepted',
		[ 'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (22, 'options tracked')" ],
		extra => $options, port => $tport);
	is($show_tracked, 'off', 'the tracked setting does not reach the server');
	did_not_fire(22, 'the write of a connection with tracked options fired nothing');
}

# --- 4. session-level SET: it stays on the server connection -----------------
# This is why the README says to use SET LOCAL (or a role) behind a
# transaction-mode pooler: the server connection goes to the next client
# as it is, and PgBouncer's server_reset_query is not sent in transaction mode.
my ($pid_c) = bouncer_lines('session-level SET through PgBouncer',
	[ 'SET cocohooks.api_session = on', 'SELECT pg_backend_pid()' ]);
my ($show_d, $pid_d) = bouncer_lines('next client, untagged',
	[
		'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (30, 'leaked tag')",
		'SELECT pg_backend_pid()'
	]);
is($pid_c, $pid_a, 'the same server connection again');
is($pid_d, $pid_c, 'the next client got that server connection');
is($show_d, 'on', "the SET is still on for the next client");
ok(arrives(30), "the pitfall: the next client's untagged write fired (row 30 is delivered)");

# nothing above relied on PgBouncer resetting server connections
my @config = bouncer_lines('SHOW CONFIG on the admin console', ['SHOW CONFIG'],
	dbname => 'pgbouncer');
ok((grep { /^server_reset_query_always\|0(\||$)/ } @config),
	'server_reset_query_always is 0');
ok(!$node->log_contains(qr/statement: DISCARD ALL/),
	'PgBouncer sent no DISCARD ALL to the server');

bouncer_lines('RESET through PgBouncer', ['RESET cocohooks.api_session']);
my ($show_reset) = bouncer_lines('SHOW after RESET', ['SHOW cocohooks.api_session']);
is($show_reset, 'off', 'RESET clears the leaked setting');

# --- 5. server_reset_query_always = 1 would stop the leak ----------------------
($ret, $out, $err) = bouncer_psql(['SET server_reset_query_always = 1'],
	dbname => 'pgbouncer');
is($ret, 0, 'server_reset_query_always = 1 on the admin console') or diag($err);
my ($pid_e) = bouncer_lines('session-level SET through PgBouncer',
	[ 'SET cocohooks.api_session = on', 'SELECT pg_backend_pid()' ]);
my ($show_f, $pid_f) = bouncer_lines('next client, untagged',
	[
		'SHOW cocohooks.api_session', "INSERT INTO docs VALUES (40, 'after reset')",
		'SELECT pg_backend_pid()'
	]);
is($pid_f, $pid_e, 'the next client got the same server connection');
is($show_f, 'off', 'DISCARD ALL after the transaction cleared the SET');
did_not_fire(40, "with server_reset_query_always = 1 the next client's write fired nothing");
ok($node->log_contains(qr/statement: DISCARD ALL/),
	'PgBouncer sent DISCARD ALL to the server');

# exactly the rows that should fire, each once
is_deeply(
	delivered(),
	{ 1 => 1, 10 => 1, 30 => 1, map { $_ => 1 } 1001 .. $next_marker },
	'deliveries: rows 1, 10, 30 and the markers, each once');

if (!Test::More->builder->is_passing)
{
	diag("log of $_->{name}:\n" . PostgreSQL::Test::Utils::slurp_file($_->{log}))
	  for @bouncers;
}
$_->{handle}->kill_kill(grace => 2) for @bouncers;
@bouncers = ();
$node->stop;
done_testing();
