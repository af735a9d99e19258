# Rows of several megabytes in a transaction whose events spill to a
# temporary file: each body arrives whole and exactly as to_jsonb renders
# the row, also when one message is bigger than the piece of the file read
# at a time at commit, and a rolled-back savepoint's big row is not sent.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode qw(encode_utf8);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CocoHooksTest;

my $recv = start_receiver();
my $node = new_node('bigrows', conf => qq{
work_mem = '64kB'
});
$node->start;
create_extension($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE big_rows (id int PRIMARY KEY, t text, n numeric);
	SELECT cocohooks.register_hook('big_rows', 'post_save', '$recv->{url}/big_rows');
});

# rows 1-3: 3 MB each (rendered through to_jsonb, bigger than the 1 MB read
# buffer); row 4: 900 kB (rendered directly); 5-404: small; 999: rolled back
api_sql($node, q{
	BEGIN;
	INSERT INTO big_rows SELECT g, repeat('"\\' || chr(64 + g), 1000000), g / 3.0
	  FROM generate_series(1, 3) g;
	INSERT INTO big_rows VALUES (4, repeat(chr(233) || chr(9), 300000), 4);
	INSERT INTO big_rows SELECT g, 'small ' || g, g FROM generate_series(5, 404) g;
	SAVEPOINT s;
	INSERT INTO big_rows VALUES (999, repeat('x', 3000000), 0);
	ROLLBACK TO SAVEPOINT s;
	COMMIT;
});
ok(wait_deliveries($node, '60 s'), 'all events finished');

my $recs = records($recv, sub { $_[0]{path} eq '/big_rows' });
is(scalar @$recs, 404, 'one request per committed row');
# bodies as UTF-8 bytes, by the document_id they name
my %body;
for my $r (@$recs)
{
	my $b = encode_utf8($r->{body});
	$body{$1} = $b if $b =~ /"document_id": "(\d+)"\}\z/;
}
is_deeply([ sort { $a <=> $b } keys %body ], [ 1 .. 404 ],
	'rows 1-404 arrived, the rolled-back row did not');

for my $id (1 .. 4, 5, 404)
{
	my $expected = $node->safe_psql('postgres', qq{
		SELECT format('{"event": "post_save", "collection": "big_rows", "operation": "create", "document": %s, "document_id": "%s"}',
		              to_jsonb(r)::text, r.id)
		  FROM big_rows r WHERE id = $id});
	my $got = $body{$id} // '';
	ok($got eq $expected,
		sprintf('row %d: body of %d bytes is to_jsonb(row)::text exactly', $id, length $got))
	  or diag(sprintf('expected %d bytes, got %d', length $expected, length $got));
}

is(stats($node)->{dropped}, 0, 'nothing dropped');

$node->stop;
done_testing();
