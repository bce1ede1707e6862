// A throwaway self-signed certificate for tests of listeners that speak TLS, made with
// the openssl command line (tests skip with a reason where it is missing).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Writes key.pem and cert.pem (CN = `commonName`, valid one day) into `dir`. */
export function selfSignedCertificate(dir: string, commonName: string): { key: string; cert: string } {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${commonName}`], { stdio: 'ignore' });
  return { key, cert };
}
