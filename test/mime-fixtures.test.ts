import t from 'tap';
import { loadFixtures, loadManifest, categoryChecks, requiredCategories } from './helpers/mime-fixtures.js';

const fixtures = loadFixtures();
const manifest = loadManifest();

t.test('at least 40 fixtures, every one listed in MANIFEST.tsv', async (t) => {
  t.ok(fixtures.length >= 40, `${fixtures.length} fixtures`);
  t.same([...manifest.keys()].sort(), fixtures.map((f) => f.name));
});

t.test('every manifest claim holds for the fixture bytes', async (t) => {
  for (const f of fixtures) {
    for (const cat of manifest.get(f.name) ?? []) {
      const check = categoryChecks[cat];
      t.ok(check, `${f.name}: known category ${cat}`);
      if (check) t.ok(check(f.raw), `${f.name} covers ${cat}`);
    }
  }
});

t.test('every required category is covered by some fixture', async (t) => {
  const covered = new Set([...manifest.values()].flat());
  for (const cat of [...requiredCategories, 'malformed']) t.ok(covered.has(cat), `category ${cat} covered`);
});
