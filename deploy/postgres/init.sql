-- Roles and schemas of the Messenger Gateway: one login role and one schema per service, each
-- role allowed only into its own schema. Run by psql (16+, for \getenv) as the superuser,
-- connected to the gateway database:
--   * automatically by the postgres image on the first start of an empty data volume
--     (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yml);
--   * by hand, again at any time (it is idempotent and re-syncs the passwords):
--       docker compose exec -T postgres psql -U postgres -d gateway -f /docker-entrypoint-initdb.d/10-roles-schemas.sql
--
-- Passwords come from the environment of the postgres container:
--   VK_DB_PASSWORD, TELEGRAM_DB_PASSWORD, OKDESK_DB_PASSWORD, AMOCRM_DB_PASSWORD, MESSENGER_DB_PASSWORD
-- Only the enabled integrations have one: a role whose password is empty or still a placeholder
-- (change_me, your_…) is created (or set) NOLOGIN with no password, with a NOTICE naming the
-- variable, so a disabled service's role exists, owns its schema and cannot log in. Enabling
-- that service later: set its password in .env, `docker compose up -d postgres`, run this file
-- again (above). It refuses to run while the superuser's POSTGRES_PASSWORD is empty or a
-- placeholder, and names it. On the first start that stops the container: fix .env, remove the
-- half-made volume (`docker compose down`, then
-- `docker volume rm <COMPOSE_PROJECT_NAME>_postgres-data`) and start again.
-- A new service = one more entry in the two lists below and one more variable.

\set ON_ERROR_STOP on

\getenv postgres_password POSTGRES_PASSWORD
\getenv vk_password VK_DB_PASSWORD
\getenv telegram_password TELEGRAM_DB_PASSWORD
\getenv okdesk_password OKDESK_DB_PASSWORD
\getenv amocrm_password AMOCRM_DB_PASSWORD
\getenv messenger_password MESSENGER_DB_PASSWORD

-- An unset variable becomes '' so that the check below can name it.
\if :{?postgres_password}
\else
  \set postgres_password ''
\endif
\if :{?vk_password}
\else
  \set vk_password ''
\endif
\if :{?telegram_password}
\else
  \set telegram_password ''
\endif
\if :{?okdesk_password}
\else
  \set okdesk_password ''
\endif
\if :{?amocrm_password}
\else
  \set amocrm_password ''
\endif
\if :{?messenger_password}
\else
  \set messenger_password ''
\endif

-- Hand the passwords to the DO block below through session settings (psql variables are not
-- visible inside a dollar-quoted body). Nothing here is logged by the server.
SELECT set_config('gateway.pw_postgres', :'postgres_password', false),
       set_config('gateway.pw_vk', :'vk_password', false),
       set_config('gateway.pw_telegram', :'telegram_password', false),
       set_config('gateway.pw_okdesk', :'okdesk_password', false),
       set_config('gateway.pw_amocrm', :'amocrm_password', false),
       set_config('gateway.pw_messenger', :'messenger_password', false)
\gset

DO $$
DECLARE
  svc text;
  pw  text;
  login text;
BEGIN
  -- Refuse an empty or placeholder superuser password (the placeholders service-kit refuses
  -- too) before anything changes: the superuser is reachable from every container.
  pw := lower(coalesce(current_setting('gateway.pw_postgres'), ''));
  IF btrim(pw) = '' OR pw LIKE 'change\_me%' OR pw = 'changeme' OR pw LIKE 'your\_%'
     OR pw LIKE 'your-%' OR pw LIKE '<%>' OR pw ~ '^x{3,}$' THEN
    RAISE EXCEPTION 'POSTGRES_PASSWORD is not set (or is a placeholder)';
  END IF;

  -- Nobody but the superuser and the roles granted below may connect to this database.
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  -- The public schema is not for the services: each keeps to its own schema.
  REVOKE ALL ON SCHEMA public FROM PUBLIC;

  FOREACH svc IN ARRAY ARRAY['vk', 'telegram', 'okdesk', 'amocrm', 'messenger'] LOOP
    pw := coalesce(current_setting('gateway.pw_' || svc), '');

    -- The service is off (no password in .env): its role cannot log in.
    IF btrim(pw) = '' OR lower(pw) LIKE 'change\_me%' OR lower(pw) = 'changeme'
       OR lower(pw) LIKE 'your\_%' OR lower(pw) LIKE 'your-%' OR pw LIKE '<%>'
       OR lower(pw) ~ '^x{3,}$' THEN
      RAISE NOTICE '% is not set (or is a placeholder): role % is NOLOGIN until it is set and this file runs again',
        upper(svc) || '_DB_PASSWORD', svc;
      login := format('NOLOGIN PASSWORD NULL');
    ELSE
      login := format('LOGIN PASSWORD %L', pw);
    END IF;

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = svc) THEN
      EXECUTE format('ALTER ROLE %I WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION ', svc) || login;
    ELSE
      EXECUTE format('CREATE ROLE %I WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION ', svc) || login;
    END IF;

    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), svc);
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', svc, svc);
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', svc, svc);
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', svc);
    -- Unqualified names (and sqlx's _sqlx_migrations table) land in the service's own schema.
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET search_path = %I', svc, current_database(), svc);
  END LOOP;
END
$$;

-- Forget the passwords for the rest of this session.
RESET gateway.pw_postgres;
RESET gateway.pw_vk;
RESET gateway.pw_telegram;
RESET gateway.pw_okdesk;
RESET gateway.pw_amocrm;
RESET gateway.pw_messenger;
