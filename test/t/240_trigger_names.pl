# Triggers whatever their names, in databases of any encoding
# (docs/guarantees.md §8): a pre_* document reflects every other BEFORE
# trigger of the table, also one whose name sorts after the hook's own
# (non-ASCII names: Cyrillic, CJK, Latin-1), made before or after the hook
# was registered; the hook's triggers work in UTF8, LATIN1, KOI8R and
# SQL_ASCII databases and their names are readable from clients in any
# client encoding; bodies are UTF-8.
#
# This file is UTF-8; its non-ASCII strings are bytes, sent with
# client_encoding UTF8 and converted by the server.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode qw(decode);
use JSON::PP;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('names', conf => "cocohooks.durability = wal\n");
$node->start;

my %dbs = (
	enc_utf8 => { encoding => 'UTF8', late => "\xd0\x94\xd0\xb0\xd1\x82\xd0\xb0_\xd0\xbf\xd1\x80\xd0\xbe\xd0\xb2\xd0\xb5\xd1\x80\xd0\xba\xd0\xb0",    # Дата_проверка
		later => "\xe6\xa4\x9c\xe8\xa8\xbc",    # 検証
		clients => [qw(UTF8 LATIN1 KOI8R SQL_ASCII WIN1251 EUC_JP SJIS)] },
	enc_latin1 => { encoding => 'LATIN1', late => "\xc3\x9cberpr\xc3\xbcfung", later => "\xc3\xa9t\xc3\xa9",  # Überprüfung, été
		clients => [qw(UTF8 LATIN1 SQL_ASCII)] },
	enc_koi8r => { encoding => 'KOI8R', late => "\xd0\x94\xd0\xb0\xd1\x82\xd0\xb0_\xd0\xbf\xd1\x80\xd0\xbe\xd0\xb2\xd0\xb5\xd1\x80\xd0\xba\xd0\xb0",
		later => "\xd0\xaf\xd1\x89\xd0\xb8\xd0\xba",    # Ящик
		clients => [qw(UTF8 KOI8R WIN1251 ISO_8859_5 SQL_ASCII)] },
	enc_sqlascii => { encoding => 'SQL_ASCII', late => "\xc3\xbf_late", later => "~~late",
		clients => [qw(UTF8 LATIN1 KOI8R SQL_ASCII)] },
);
for my $db (sort keys %dbs)
{
	$node->safe_psql('postgres',
		"CREATE DATABASE $db TEMPLATE template0 ENCODING '$dbs{$db}{encoding}' LC_COLLATE 'C' LC_CTYPE 'C'");
}

for my $db (sort keys %dbs)
{
	my $d = $dbs{$db};
	my $enc = $d->{encoding};
	# each database with the extension gets its own worker
	$node->safe_psql($db, 'CREATE EXTENSION cocohooks');
	ok(defined wait_worker_db($db), "$enc: the worker serves $db");

	my $sql = sub {
		my ($q) = @_;
		return $node->safe_psql($db, "SET client_encoding = 'UTF8';\n$q");
	};
	# ASCII-named BEFORE triggers sort before the hook's; the "late" one
	# sorts after it, made before the hook is registered
	$sql->(qq{
		CREATE TABLE docs (id int PRIMARY KEY, title text, note text, stamp text);
		CREATE FUNCTION upper_title() RETURNS trigger LANGUAGE plpgsql AS
		  \$\$ BEGIN NEW.title := upper(NEW.title); RETURN NEW; END \$\$;
		CREATE FUNCTION set_note() RETURNS trigger LANGUAGE plpgsql AS
		  \$\$ BEGIN NEW.note := 'noted by ' || TG_NAME; RETURN NEW; END \$\$;
		CREATE FUNCTION set_stamp() RETURNS trigger LANGUAGE plpgsql AS
		  \$\$ BEGIN NEW.stamp := 'stamped by ' || TG_NAME; RETURN NEW; END \$\$;
		CREATE FUNCTION keep_two() RETURNS trigger LANGUAGE plpgsql AS
		  \$\$ BEGIN RETURN CASE WHEN OLD.id = 2 THEN NULL ELSE OLD END; END \$\$;
		CREATE TRIGGER a_upper BEFORE INSERT OR UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION upper_title();
		CREATE TRIGGER "$d->{late}" BEFORE INSERT OR UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION set_note();
		SELECT cocohooks.register_hook('docs', 'pre_save', '$recv->{url}/$db/pre_save');
		SELECT cocohooks.register_hook('docs', 'pre_delete', '$recv->{url}/$db/pre_delete');
		SELECT cocohooks.register_hook('docs', 'post_save', '$recv->{url}/$db/post_save');
	});
	# made after the hook was registered: the event trigger takes it into account
	$sql->(qq{
		CREATE TRIGGER "$d->{later}" BEFORE INSERT OR UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION set_stamp();
		CREATE TRIGGER "$d->{later}_del" BEFORE DELETE ON docs FOR EACH ROW EXECUTE FUNCTION keep_two();
	});

	$sql->(q{SET cocohooks.api_session = on;
		INSERT INTO docs (id, title) VALUES (1, 'first'), (2, 'second');
		UPDATE docs SET title = 'renamed' WHERE id = 1;
		DELETE FROM docs WHERE id IN (1, 2);});
	is($node->safe_psql($db, 'SELECT cocohooks.wait_for_deliveries()'), 't', "$enc: delivered");

	my $recs = records($recv, sub { $_[0]{path} =~ m{^/$db/} });
	my %by;
	for my $r (@$recs)
	{
		# the record's body is already text: decode the JSON without decoding UTF-8 again
		my $b = JSON::PP->new->decode($r->{body});
		push @{ $by{ (split m{/}, $r->{path})[2] } }, $b;
	}
	my @pre = sort { $a->{document}{id} <=> $b->{document}{id} || $a->{operation} cmp $b->{operation} }
	  @{ $by{pre_save} // [] };
	is(scalar(@pre), 3, "$enc: three pre_save events (two creates, one update)");
	my $late = decode('UTF-8', $d->{late});
	my $later = decode('UTF-8', $d->{later});
	for my $p (@pre)
	{
		my $doc = $p->{document};
		my $what = "$enc: pre_save $p->{operation} of $doc->{id}";
		is($doc->{title}, uc($doc->{id} == 1 && $p->{operation} eq 'update' ? 'renamed' : $doc->{id} == 1 ? 'first' : 'second'),
			"$what: shows the ASCII-named trigger's change");
		is($doc->{note}, "noted by $late", "$what: and the later-sorting one's, made before the hook");
		is($doc->{stamp}, "stamped by $later", "$what: and the one made after the hook");
	}
	my @pre_del = @{ $by{pre_delete} // [] };
	is(scalar(@pre_del), 1, "$enc: one pre_delete: the row a later BEFORE DELETE trigger kept sends none");
	is($pre_del[0]{document}{id}, 1, "$enc: pre_delete of the deleted row") if @pre_del;
	my ($post) = grep { $_->{operation} eq 'update' } @{ $by{post_save} // [] };
	is($post->{document}{note}, "noted by $late", "$enc: post_save shows the row as stored") if $post;

	# the hook's triggers as every client encoding sees them
	for my $client (@{ $d->{clients} })
	{
		my ($ret, $out, $err) = $node->psql($db,
			"SET client_encoding = '$client'; SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger "
			  . "WHERE tgfoid = 'cocohooks.row_trigger'::regproc");
		is($out, '~cocohooks_post,~cocohooks_pre', "$enc: hook triggers listed with client_encoding $client")
		  or diag($err);
	}
}

$node->stop;
done_testing();

# pid of the worker once it serves $db
sub wait_worker_db
{
	my ($db) = @_;
	my $pid;
	wait_until("worker in $db", 30, sub {
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE backend_type = 'cocohooks worker' AND datname = '$db'");
		return $pid ne '';
	});
	return $pid ne '' ? $pid : undef;
}
