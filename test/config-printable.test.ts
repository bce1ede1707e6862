// `config show` never prints a secret, whatever shape the value under a secret's key has
// (a rewrite module's options are free-form: lists of tokens, nested credentials).
import t from 'tap';
import { stringify } from 'yaml';
import { printableConfig, REDACTED } from '../src/config/printable.js';
import { validateConfig } from '../src/config/load.js';
import { tempDir, testConfigInput } from './helpers/gateway.js';

const { dir, cleanup } = tempDir('printable');
t.teardown(cleanup);

t.test('a secret key redacts every value under it; names of variables and files stay', async (t) => {
  const config = validateConfig(
    testConfigInput(dir, {
      queue: {
        rewrite: {
          module: './step.js',
          options: {
            target: 'fr',
            tokens: ['tok-one-XYZ', 'tok-two-XYZ'],
            secrets: { primary: 'sec-primary-XYZ', rotation: [1234567, 'sec-old-XYZ'] },
            apiKey: 'api-key-XYZ',
            credentials: { user: 'svc', pass: 'cred-pass-XYZ' },
            privateKey: '-----BEGIN PRIVATE KEY----- XYZ',
            tokenEnv: 'STEP_TOKEN',
            secretFile: '/etc/step.secret',
          },
        },
      },
    }),
  );
  const printed = stringify(printableConfig(config));
  t.notMatch(printed, /XYZ|1234567/, 'no secret printed');
  const options = (printableConfig(config) as { queue: { rewrite: { options: Record<string, unknown> } } }).queue.rewrite.options;
  t.same(options, {
    target: 'fr',
    tokens: [REDACTED, REDACTED],
    secrets: { primary: REDACTED, rotation: [REDACTED, REDACTED] },
    apiKey: REDACTED,
    credentials: { user: REDACTED, pass: REDACTED },
    privateKey: REDACTED,
    tokenEnv: 'STEP_TOKEN',
    secretFile: '/etc/step.secret',
  });
});

t.test('paths and switches next to secrets print as they are', async (t) => {
  const config = validateConfig(
    testConfigInput(dir, {
      smtp: { tls: { key: '/etc/mailbag/key.pem', cert: '/etc/mailbag/cert.pem' }, auth: { users: [{ username: 'relay', password: 'pw-XYZ' }], allowInsecure: true } },
      multilingual: { arc: { domain: 'example.test', selector: 's1', privateKeyFile: '/etc/mailbag/arc.key' } },
    }),
  );
  const shown = printableConfig(config) as {
    smtp: { tls: { key: string }; auth: { users: Array<{ username: string; password: string }>; allowInsecure: boolean } };
    multilingual: { arc: { privateKeyFile: string } };
  };
  t.equal(shown.smtp.tls.key, '/etc/mailbag/key.pem');
  t.same(shown.smtp.auth, { users: [{ username: 'relay', password: REDACTED }], allowInsecure: true });
  t.equal(shown.multilingual.arc.privateKeyFile, '/etc/mailbag/arc.key');
});
