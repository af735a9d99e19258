-- Everything the cocohooks extension consists of, as sorted text lines with
-- no OIDs: its member objects, the columns (by number), defaults,
-- constraints, indexes, triggers, policies, grants and options of its
-- relations, the definitions and grants of its functions and views, and its
-- configuration tables.  test/t/150_upgrade.pl compares this listing of a
-- fresh install with that of an updated one, so an upgrade script that
-- forgets a change fails the suite.
WITH ext AS (
    SELECT oid, extnamespace, extconfig, extcondition
      FROM pg_catalog.pg_extension WHERE extname = 'cocohooks'
), members AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
), rels AS (
    SELECT c.oid, c.oid::regclass::text AS name, c.relkind, c.relacl,
           c.relrowsecurity, c.relforcerowsecurity, c.reloptions
      FROM pg_catalog.pg_class c, ext
     WHERE c.relnamespace = ext.extnamespace
), lines AS (
    SELECT 'member ' || pg_catalog.pg_describe_object(classid, objid, 0) AS line
      FROM members
    UNION ALL
    SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '-')
      FROM pg_catalog.pg_namespace n, ext WHERE n.oid = ext.extnamespace
    UNION ALL
    SELECT format('relation %s kind=%s acl=%s rls=%s/%s options=%s', name, relkind,
                  coalesce(relacl::text, '-'), relrowsecurity, relforcerowsecurity,
                  coalesce(reloptions::text, '-'))
      FROM rels
    UNION ALL
    SELECT format('column %s %s %s %s notnull=%s default=%s identity=%s generated=%s dropped=%s acl=%s',
                  r.name, a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
                  a.attnotnull, coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '-'),
                  a.attidentity, a.attgenerated, a.attisdropped, coalesce(a.attacl::text, '-'))
      FROM rels r
      JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0
      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    UNION ALL
    SELECT format('constraint %s %s %s', r.name, c.conname, pg_catalog.pg_get_constraintdef(c.oid))
      FROM rels r JOIN pg_catalog.pg_constraint c ON c.conrelid = r.oid
    UNION ALL
    SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
      FROM rels r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT format('trigger %s enabled=%s', pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled)
      FROM rels r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s %s cmd=%s permissive=%s roles=%s using=%s check=%s', r.name,
                  p.polname, p.polcmd, p.polpermissive,
                  (SELECT pg_catalog.array_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END ORDER BY 1)
                     FROM pg_catalog.unnest(p.polroles) x),
                  coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '-'),
                  coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '-'))
      FROM rels r JOIN pg_catalog.pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT format('view %s %s', name, pg_catalog.pg_get_viewdef(oid))
      FROM rels WHERE relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence %s %s start=%s inc=%s min=%s max=%s cycle=%s', r.name,
                  pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
                  s.seqmin, s.seqmax, s.seqcycle)
      FROM rels r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    SELECT format('function %s acl=%s secdef=%s volatile=%s strict=%s parallel=%s config=%s %s',
                  p.oid::regprocedure, coalesce(p.proacl::text, '-'), p.prosecdef,
                  p.provolatile, p.proisstrict, p.proparallel,
                  coalesce(p.proconfig::text, '-'), pg_catalog.pg_get_functiondef(p.oid))
      FROM pg_catalog.pg_proc p, ext
     WHERE p.pronamespace = ext.extnamespace AND p.prokind IN ('f', 'p', 'w')
    UNION ALL
    SELECT format('type %s kind=%s', t.oid::regtype, t.typtype)
      FROM pg_catalog.pg_type t, ext
     WHERE t.typnamespace = ext.extnamespace AND t.typrelid = 0
       AND t.typelem = 0
    UNION ALL
    SELECT format('config %s where=%s', c.rel::regclass, c.cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS c(rel, cond)
)
SELECT line FROM lines ORDER BY line COLLATE "C";
