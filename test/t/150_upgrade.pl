# Upgrading in place, from every released version to the version under
# development: 0.1.0 -> 0.3.0 (PostgreSQL chains cocohooks--0.1.0--0.2.0.sql
# and cocohooks--0.2.0--0.3.0.sql) and 0.2.0 -> 0.3.0.  For each, an install
# of the old version with live hooks keeps delivering on the new library
# before ALTER EXTENSION UPDATE, and after it keeps its hooks, triggers,
# delivery log, row-level security and grants; and an updated install has
# exactly the schema of a fresh one (test/extension_schema.sql).
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

# the version under development, and the released versions updated to it
my $newest = '0.3.0';
my @released = ('0.1.0', '0.2.0');

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
is(extversion(), $newest, "a fresh install is $newest");
my $fresh_schema = $node->safe_psql('postgres', $schema_sql);
like($fresh_schema, qr/^column cocohooks\.hooks 1 id bigint/m,
	'the schema listing shows the catalog columns by number');
$node->safe_psql('postgres', 'DROP EXTENSION cocohooks');

# the roles of every upgrade below: the hooks belong to an ordinary role
$node->safe_psql('postgres', q{
	CREATE ROLE app_owner LOGIN;
	CREATE ROLE app_api LOGIN;
	CREATE ROLE other_owner LOGIN;
	ALTER ROLE app_api SET cocohooks.api_session = on;
});

# writes made through the API, through the new library on the old schema
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

# what an update must keep, by the version updated from: the catalog
# columns that version has (0.2.0 adds the rotation, filter and ordering
# ones, and the log's response)
my %hooks_sql = ('0.1.0' => q{SELECT id, collection::text, event, url, headers::text, secret, enabled,
	timeout_ms, max_retries, created_at FROM cocohooks.hooks ORDER BY id});
$hooks_sql{'0.2.0'} = $hooks_sql{'0.1.0'} =~ s/created_at/created_at, disabled_reason, previous_secret,
	previous_secret_until, columns, exclude_columns, ordering/r;
my %log_sql = ('0.1.0' => q{SELECT id, hook_id, event, collection, document_id, success, status_code,
	error, attempts, queued_at, finished_at, webhook_id, payload::text
	FROM cocohooks.deliveries ORDER BY id});
$log_sql{'0.2.0'} = $log_sql{'0.1.0'} =~ s/payload::text/payload::text, response/r;
# the update from 0.1.0 renames the hook triggers (0.2.0 names them in
# ASCII): the same triggers, with the same definitions apart from their names
my $triggers_sql = q{SELECT t.oid, regexp_replace(pg_get_triggerdef(t.oid), '^CREATE TRIGGER \S+ ', 'CREATE TRIGGER '),
	tgenabled FROM pg_trigger t
	WHERE tgrelid = 'docs'::regclass AND NOT tgisinternal ORDER BY t.oid};
my $security_sql = q{SELECT c.relname, c.relrowsecurity, c.relacl::text,
	(SELECT string_agg(polname || ':' || pg_get_expr(polqual, polrelid), ',' ORDER BY polname)
	   FROM pg_policy WHERE polrelid = c.oid)
	FROM pg_class c WHERE c.relnamespace = 'cocohooks'::regnamespace ORDER BY 1};
# by name: 0.2.0 gives register_hook three more arguments
my $grants_sql = q{SELECT p.proname, p.proacl::text FROM pg_proc p
	WHERE p.pronamespace = 'cocohooks'::regnamespace ORDER BY p.proname};
my $seen_sql = q{SELECT count(*) FROM cocohooks.hooks};

sub signatures
{
	my ($rec, @secrets) = @_;
	return join ' ', map {
		'v1,' . MIME::Base64::encode_base64(Digest::SHA::hmac_sha256(
			"$rec->{headers}{'webhook-id'}.$rec->{headers}{'webhook-timestamp'}.$rec->{body}",
			MIME::Base64::decode_base64(substr($_, 6))), '')
	} @secrets;
}

# --- each released version as released, with live hooks, updated to $newest
sub upgrade_from
{
	my ($old) = @_;
	$node->safe_psql('postgres', qq{
		CREATE EXTENSION cocohooks VERSION '$old';
		CREATE TABLE docs (id int PRIMARY KEY, v text);
		ALTER TABLE docs OWNER TO app_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO app_api;
	});
	is(extversion(), $old, "CREATE EXTENSION ... VERSION $old installs $old");

	my @secrets = ('whsec_' . MIME::Base64::encode_base64("upgrade signing key of $old", ''));
	# what each hook's register_hook gets beyond its url: 0.2.0's filters
	# and ordering where the old version has them
	my %extra = (post_save => ", secret => '$secrets[0]'");
	if ($old ne '0.1.0')
	{
		$extra{pre_save} = ", columns => '{v}'";
		$extra{pre_delete} = ", exclude_columns => '{v}'";
		$extra{post_delete} = ", ordering => 'none'";
	}
	my %hook;
	for my $ev (qw(pre_save post_save pre_delete post_delete))
	{
		$hook{$ev} = $node->safe_psql('postgres',
			"SET ROLE app_owner; SELECT cocohooks.register_hook('docs', '$ev', '$recv->{url}/$ev'"
			  . ($extra{$ev} // '') . ')');
	}
	$hook{disabled} = $node->safe_psql('postgres',
		"SET ROLE app_owner; SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/disabled')");
	$node->safe_psql('postgres', "SET ROLE app_owner; SELECT cocohooks.disable_hook($hook{disabled})");
	# a failing hook: its failures are in the log whatever log_deliveries says
	$hook{failing} = $node->safe_psql('postgres',
		"SET ROLE app_owner; SELECT cocohooks.register_hook('docs', 'post_delete', '$recv->{url}/status/500/failing')");
	if ($old ne '0.1.0')
	{
		# a rotation in its overlap: requests carry the new and the old signature
		unshift @secrets, 'whsec_' . MIME::Base64::encode_base64("rotated key of $old", '');
		$node->safe_psql('postgres',
			"SET ROLE app_owner; SELECT cocohooks.rotate_secret($hook{post_save}, '$secrets[0]', '1 day')");
	}

	my $n = scalar @{ records($recv) };
	api_writes(1);
	ok(wait_deliveries($node), "deliveries finished on the $old schema");
	is_deeply(paths_since($n), \%expected_paths,
		"on the new library, a $old schema still fires every enabled hook and only those");

	my $hooks_sql = $hooks_sql{$old};
	my $log_sql = $log_sql{$old};
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
	is(scalar(split /\n/, $before{hooks}), 6, "six hooks registered on $old");
	cmp_ok(scalar(split /\n/, $before{log}), '>=', 9, "the delivery log has rows before the update from $old");
	is($before{owner_sees}, '6', "the table's owner sees its hooks on $old");
	is($before{other_sees}, '0', "another role sees none of them on $old");
	is($before{other_log}, '0', "nor their delivery log rows on $old");

	is($node->safe_psql('postgres', 'SELECT count(*) FROM cocohooks.stats WHERE queued > 0'), '1',
		"the new library serves the $old stats view"
		  . ($old eq '0.1.0' ? ' (8 columns)' : ''));

	# --- the update
	$node->safe_psql('postgres', 'ALTER EXTENSION cocohooks UPDATE');
	is($node->safe_psql('postgres', 'SELECT durability FROM cocohooks.stats'), 'wal',
		"after the update from $old the stats view has the 0.2.0 columns");
	is(extversion(), $newest, "ALTER EXTENSION cocohooks UPDATE reaches $newest from $old");
	is($node->safe_psql('postgres', 'SELECT parked || \'/\' || parked_due FROM cocohooks.stats'), '0/0',
		"after the update from $old the stats view counts parked deliveries (0.3.0)");

	# grants: of the functions the old version had (those added since are
	# compared with a fresh install's below, with the rest of the schema)
	my $old_functions = join ', ', map { my ($f) = split /\|/; "'$f'" } split /\n/, $before{grants};
	my $kept_grants_sql = $grants_sql =~ s/ ORDER BY/ AND p.proname IN ($old_functions) ORDER BY/r;
	# likewise the relations (cocohooks.retry_queue is new in 0.3.0; 0.3.0
	# replaced deliveries_finished_at_idx by an index per kind of row, which
	# the comparison with a fresh install below checks)
	my $old_relations = join ', ', map { my ($r) = split /\|/; "'$r'" } grep { /^\w+\|/ } split /\n/, $before{security};
	my $kept_security_sql = $security_sql =~ s/ ORDER BY 1/ AND c.relname IN ($old_relations) ORDER BY 1/r;
	my %expected = %before;
	$expected{security} =~ s/^deliveries_finished_at_idx\|[^\n]*\n//m;
	for my $what (qw(hooks triggers log security grants))
	{
		my $sql = { hooks => $hooks_sql, triggers => $triggers_sql, log => $log_sql,
			security => $kept_security_sql, grants => $kept_grants_sql }->{$what};
		is($node->safe_psql('postgres', $sql), $expected{$what}, "update from $old keeps the $what");
	}
	is($node->safe_psql('postgres', q{SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger
			WHERE tgrelid = 'docs'::regclass AND tgfoid = 'cocohooks.row_trigger'::regproc}),
		'~cocohooks_post,~cocohooks_pre', "after the update from $old the hook triggers have their ASCII names");
	is($node->safe_psql('postgres', $seen_sql, extra_params => [ '-U', 'app_owner' ]),
		'6', "after the update from $old the table's owner still sees its hooks");
	is($node->safe_psql('postgres', $seen_sql, extra_params => [ '-U', 'other_owner' ]),
		'0', 'and another role still sees none');

	my $updated_schema = $node->safe_psql('postgres', $schema_sql);
	is($updated_schema, $fresh_schema,
		"an updated $old install has the schema of a fresh $newest install")
	  or diag(schema_diff($fresh_schema, $updated_schema));

	# --- every hook still fires after the update, signed where it has a secret
	$n = scalar @{ records($recv) };
	api_writes(11);
	ok(wait_deliveries($node), "deliveries finished after the update from $old");
	is_deeply(paths_since($n), \%expected_paths,
		"after the update from $old every enabled hook fires, the disabled one does not");

	my $recs = records($recv);
	my @requests = @{$recs}[ $n .. $#$recs ];
	my ($post) = grep { $_->{path} eq '/post_save' && body_of($_)->{document}{id} == 11
		  && body_of($_)->{operation} eq 'create' } @requests;
	is($post->{headers}{'webhook-signature'}, signatures($post, @secrets),
		@secrets > 1
		? "the hook in a rotation still signs with both secrets, the new first (from $old)"
		: "the hook with a secret still signs with it (from $old)");
	is($post->{headers}{'user-agent'}, "cocohooks/$newest", 'requests name the library version');
	if ($old ne '0.1.0')
	{
		my ($deleted) = grep { $_->{path} eq '/pre_delete' && body_of($_)->{document}{id} == 12 }
		  @requests;
		ok($deleted && !exists body_of($deleted)->{document}{v},
			"after the update from $old a hook's exclude_columns still leave columns out");
	}
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM cocohooks.deliveries WHERE hook_id = $hook{failing} AND NOT success"),
		'2', "failures are logged before and after the update from $old");

	# enable/disable still work on hooks registered under the old version
	is($node->safe_psql('postgres',
		"SET ROLE app_owner; SELECT cocohooks.enable_hook($hook{disabled})"), 't',
		"enable_hook on a hook registered under $old");
	$n = scalar @{ records($recv) };
	$node->safe_psql('postgres', "INSERT INTO docs VALUES (21, 'c')",
		extra_params => [ '-U', 'app_api' ]);
	ok(wait_deliveries($node), 'deliveries finished');
	ok(paths_since($n)->{'/disabled'}, "the re-enabled hook fires (from $old)");
	return;
}

for my $i (0 .. $#released)
{
	# the next version starts afresh (DROP TABLE removes the table's hooks)
	if ($i > 0)
	{
		# no checkpoint in between: the next install must not send this
		# one's events again (test/t/290_reinstall.pl)
		$node->safe_psql('postgres', 'DROP TABLE docs; DROP EXTENSION cocohooks');
	}
	upgrade_from($released[$i]);
}

# a catalog with more columns than the library knows is read safely, and
# so is one with a dropped column
my $id = 31;
for my $change ([ 'ADD COLUMN note text', 'an extra' ], [ 'DROP COLUMN note', 'a dropped' ])
{
	my ($ddl, $what) = @$change;
	$node->safe_psql('postgres', "ALTER TABLE cocohooks.hooks $ddl");
	my $n = scalar @{ records($recv) };
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
