# Upgrading in place: a 0.1.0 install with live hooks keeps delivering on
# the new library before ALTER EXTENSION UPDATE, and after it keeps its
# hooks, triggers, delivery log, row-level security and grants; and an
# updated install has exactly the schema of a fresh one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;
use MIME::Base64;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $schema_sql =
  PostgreSQL::Test::Utils::slurp_file("$FindBin::RealBin/../extension_schema.sql");

my $recv = start_receiver();
my $node = new_node('upgrade', conf => "cocohooks.log_deliveries = 'all'\n");
$node->start;

sub extversion
{
	return $node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'cocohooks'");
}

# --- the schema of a fresh install of the default version
create_extension($node);
is(extversion(), '0.3.0', 'a fresh install is 0.3.0');
my $fresh_schema = $node->safe_psql('postgres', $schema_sql);
like($fresh_schema, qr/^column cocohooks\.hooks 1 id bigint/m,
	'the schema listing shows the catalog columns by number');
$node->safe_psql('postgres', 'DROP EXTENSION cocohooks');

# --- 0.1.0 as released, with live hooks owned by an ordinary role
$node->safe_psql('postgres', q{
	CREATE EXTENSION cocohooks VERSION '0.1.0';
	CREATE ROLE app_owner LOGIN;
	CREATE ROLE app_api LOGIN;
	CREATE ROLE other_owner LOGIN;
	CREATE TABLE docs (id int PRIMARY KEY, v text);
	ALTER TABLE docs OWNER TO app_owner;
	GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO app_api;
	ALTER ROLE app_api SET cocohooks.api_session = on;
});
is(extversion(), '0.1.0', 'CREATE EXTENSION ... VERSION 0.1.0 installs 0.1.0');

my $secret = 'whsec_' . MIME::Base64::encode_base64('upgrade signing key', '');
my %hook;
for my $ev (qw(pre_save post_save pre_delete post_delete))
{
	my $extra = $ev eq 'post_save' ? ", secret => '$secret'" : '';
	$hook{$ev} = $node->safe_psql('postgres',
		"SET ROLE app_owner; SELECT cocohooks.register_hook('docs', '$ev', '$recv->{url}/$ev'$extra)");
}
$hook{disabled} = $node->safe_psql('postgres',
	"SET ROLE app_owner; SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/disabled')");
$node->safe_psql('postgres', "SET ROLE app_owner; SELECT cocohooks.disable_hook($hook{disabled})");
# a failing hook: its failures are in the log whatever log_deliveries says
$hook{failing} = $node->safe_psql('postgres',
	"SET ROLE app_owner; SELECT cocohooks.register_hook('docs', 'post_delete', '$recv->{url}/status/500/failing')");

# writes made through the API, through the new library on the 0.1.0 schema
sub api_writes
{
	my ($first) = @_;
	my $second = $first + 1;
	$node->safe_psql('postgres', qq{
		INSERT INTO docs VALUES ($first, 'a'), ($second, 'b');
		UPDATE docs SET v = 'a2' WHERE id = $first;
		DELETE FROM docs WHERE id = $second;
	}, extra_params => [ '-U', 'app_api' ]);
	return;
}

sub paths_since
{
	my ($n) = @_;
	my $recs = records($recv);
	my %paths;
	$paths{ $_->{path} }++ for @{$recs}[ $n .. $#$recs ];
	return \%paths;
}

my %expected_paths = (
	'/pre_save' => 3,       # two inserts, one update
	'/post_save' => 3,
	'/pre_delete' => 1,
	'/post_delete' => 1,
	'/status/500/failing' => 1);

api_writes(1);
ok(wait_deliveries($node), 'deliveries finished on the 0.1.0 schema');
is_deeply(paths_since(0), \%expected_paths,
	'on the new library, a 0.1.0 schema still fires every enabled hook and only those');

my $hooks_sql = q{SELECT id, collection::text, event, url, headers::text, secret, enabled,
	timeout_ms, max_retries, created_at FROM cocohooks.hooks ORDER BY id};
# the update renames the hook triggers (0.2.0 names them in ASCII): the
# same triggers, with the same definitions apart from their names
my $triggers_sql = q{SELECT t.oid, regexp_replace(pg_get_triggerdef(t.oid), '^CREATE TRIGGER \S+ ', 'CREATE TRIGGER '),
	tgenabled FROM pg_trigger t
	WHERE tgrelid = 'docs'::regclass AND NOT tgisinternal ORDER BY t.oid};
my $log_sql = q{SELECT id, hook_id, event, collection, document_id, success, status_code,
	error, attempts, queued_at, finished_at, webhook_id, payload::text
	FROM cocohooks.deliveries ORDER BY id};
my $security_sql = q{SELECT c.relname, c.relrowsecurity, c.relacl::text,
	(SELECT string_agg(polname || ':' || pg_get_expr(polqual, polrelid), ',' ORDER BY polname)
	   FROM pg_policy WHERE polrelid = c.oid)
	FROM pg_class c WHERE c.relnamespace = 'cocohooks'::regnamespace ORDER BY 1};
# by name: 0.2.0 gives register_hook three more arguments
my $grants_sql = q{SELECT p.proname, p.proacl::text FROM pg_proc p
	WHERE p.pronamespace = 'cocohooks'::regnamespace ORDER BY p.proname};
my $seen_sql = q{SELECT count(*) FROM cocohooks.hooks};

my %before = (
	hooks => $node->safe_psql('postgres', $hooks_sql),
	triggers => $node->safe_psql('postgres', $triggers_sql),
	log => $node->safe_psql('postgres', $log_sql),
	security => $node->safe_psql('postgres', $security_sql),
	grants => $node->safe_psql('postgres', $grants_sql),
	owner_sees => $node->safe_psql('postgres', $seen_sql, extra_params => [ '-U', 'app_owner' ]),
	other_sees => $node->safe_psql('postgres', $seen_sql, extra_params => [ '-U', 'other_owner' ]),
	other_log => $node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.deliveries',
		extra_params => [ '-U', 'other_owner' ]));
is(scalar(split /\n/, $before{hooks}), 6, 'six hooks registered on 0.1.0');
cmp_ok(scalar(split /\n/, $before{log}), '>=', 9, 'the delivery log has rows before the update');
is($before{owner_sees}, '6', "the table's owner sees its hooks");
is($before{other_sees}, '0', "another role sees none of them");
is($before{other_log}, '0', "nor their delivery log rows");

is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.stats WHERE queued > 0'), '1',
	'the new library serves the 0.1.0 stats view (8 columns)');

# --- the update
$node->safe_psql('postgres', 'ALTER EXTENSION cocohooks UPDATE');
is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'wal',
	'after the update the stats view has the 0.2.0 columns');
is(extversion(), '0.3.0', 'ALTER EXTENSION cocohooks UPDATE reaches 0.3.0');

# grants: of the functions 0.1.0 had (those 0.2.0 adds are compared with a
# fresh install's below, with the rest of the schema)
my $old_functions = join ', ', map { my ($f) = split /\|/; "'$f'" } split /\n/, $before{grants};
my $kept_grants_sql = $grants_sql =~ s/ ORDER BY/ AND p.proname IN ($old_functions) ORDER BY/r;
for my $what (qw(hooks triggers log security grants))
{
	my $sql = { hooks => $hooks_sql, triggers => $triggers_sql, log => $log_sql,
		security => $security_sql, grants => $kept_grants_sql }->{$what};
	is($node->safe_psql('postgres', $sql), $before{$what}, "update keeps the $what");
}
is($node->safe_psql('postgres', q{SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger
		WHERE tgrelid = 'docs'::regclass AND tgfoid = 'cocohooks.row_trigger'::regproc}),
	'~cocohooks_post,~cocohooks_pre', 'the update gives the hook triggers their ASCII names');
is($node->safe_psql('postgres', $seen_sql, extra_params => [ '-U', 'app_owner' ]),
	'6', "after the update the table's owner still sees its hooks");
is($node->safe_psql('postgres', $seen_sql, extra_params => [ '-U', 'other_owner' ]),
	'0', 'and another role still sees none');

my $updated_schema = $node->safe_psql('postgres', $schema_sql);
is($updated_schema, $fresh_schema,
	'an updated 0.1.0 install has the schema of a fresh 0.3.0 install')
  or diag(schema_diff($fresh_schema, $updated_schema));

# --- every hook still fires after the update, signed where it has a secret
my $n = scalar @{ records($recv) };
api_writes(11);
ok(wait_deliveries($node), 'deliveries finished after the update');
is_deeply(paths_since($n), \%expected_paths,
	'after the update every enabled hook fires, the disabled one does not');

my ($post) = grep { body_of($_)->{document}{id} == 11 && body_of($_)->{operation} eq 'create' }
  @{ records($recv, sub { $_[0]{path} eq '/post_save' }) };
my $key = MIME::Base64::decode_base64(substr($secret, 6));
is($post->{headers}{'webhook-signature'},
	'v1,' . MIME::Base64::encode_base64(Digest::SHA::hmac_sha256(
		"$post->{headers}{'webhook-id'}.$post->{headers}{'webhook-timestamp'}.$post->{body}", $key), ''),
	'the hook with a secret still signs with it');
is($post->{headers}{'user-agent'}, 'cocohooks/0.3.0', 'requests name the library version');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook{failing} AND NOT success"),
	'2', 'failures are logged before and after the update');

# enable/disable still work on hooks registered under 0.1.0
is($node->safe_psql('postgres',
	"SET ROLE app_owner; SELECT cocohooks.enable_hook($hook{disabled})"), 't',
	'enable_hook on a hook registered under 0.1.0');
$n = scalar @{ records($recv) };
$node->safe_psql('postgres', "INSERT INTO docs VALUES (21, 'c')",
	extra_params => [ '-U', 'app_api' ]);
ok(wait_deliveries($node), 'deliveries finished');
ok(paths_since($n)->{'/disabled'}, 'the re-enabled hook fires');

# a catalog with more columns than the library knows is read safely, and
# so is one with a dropped column
my $id = 31;
for my $change ([ 'ADD COLUMN note text', 'an extra' ], [ 'DROP COLUMN note', 'a dropped' ])
{
	my ($ddl, $what) = @$change;
	$node->safe_psql('postgres', "ALTER TABLE cocohooks.hooks $ddl");
	$n = scalar @{ records($recv) };
	$node->safe_psql('postgres', "INSERT INTO docs VALUES ($id, '$what column')",
		extra_params => [ '-U', 'app_api' ]);
	$id++;
	ok(wait_deliveries($node), "deliveries finished with $what catalog column");
	is(paths_since($n)->{'/post_save'}, 1, "hooks fire with $what catalog column");
}

# lines in one listing and not the other, for the diagnosis
sub schema_diff
{
	my ($a, $b) = @_;
	my %in_a = map { $_ => 1 } split /\n/, $a;
	my %in_b = map { $_ => 1 } split /\n/, $b;
	return join("\n",
		(map { "only fresh:   $_" } grep { !$in_b{$_} } sort keys %in_a),
		(map { "only updated: $_" } grep { !$in_a{$_} } sort keys %in_b));
}

$node->stop;
done_testing();
