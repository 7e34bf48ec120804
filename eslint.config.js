// Lint: typescript-eslint's recommended rules, plus the layering rules that keep
// concerns apart (a lease store never imports a data plane, and so on).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (folder, forbidden) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: forbidden.map((f) => ({ group: [`**/${f}/**`, `../${f}/*`], message: `src/${folder} must not depend on src/${f}` })),
    }],
  },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'build/**', '.lab/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-process-exit': 'off',
    },
  },
  // Only the CLI may end the process.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**', 'src/**/*.test.ts'],
    rules: { 'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'only src/cli may exit the process' }] },
  },
  layer('netlink', ['cni', 'ipam', 'lab', 'firewall', 'cli', 'subnet']),
  layer('ipam', ['cni', 'netlink', 'lab', 'firewall', 'cli']),
  layer('firewall', ['cni', 'ipam', 'netlink', 'lab', 'cli']),
  layer('subnet', ['cni', 'ipam', 'netlink', 'lab', 'firewall', 'cli']),
  layer('cni', ['lab', 'cli', 'lease', 'dataplane', 'agent']),
  // A backend never knows about etcd, and a lease store never knows about VXLAN.
  layer('dataplane', ['cni', 'ipam', 'lab', 'firewall', 'cli', 'subnet', 'lease', 'agent', 'modes', 'mesh', 'kube']),
  layer('lease', ['cni', 'ipam', 'netlink', 'lab', 'firewall', 'cli', 'dataplane', 'agent', 'modes', 'mesh', 'kube']),
  // The runtime is mode-neutral: a mode plugs in through src/agent/control-plane.ts.
  layer('agent', ['lab', 'cli', 'lease', 'modes', 'mesh', 'kube']),
  // A mode is a control plane: it never programs the kernel itself.
  layer('modes', ['cni', 'ipam', 'netlink', 'lab', 'firewall', 'cli', 'dataplane']),
  // A Kubernetes store and the mesh's control plane never know VXLAN or netlink.
  layer('kube', ['cni', 'netlink', 'lab', 'firewall', 'cli', 'dataplane', 'lease']),
  layer('kube/standin', ['cni', 'netlink', 'lab', 'firewall', 'cli', 'dataplane', 'lease', 'agent', 'modes', 'mesh', 'check']),
  // The stand-in API server is test and lab support, never part of the agent.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.test.ts', 'src/**/testing.ts', 'src/**/contract-cluster.ts', 'src/lab/**', 'src/check/**', 'src/kube/standin/**'],
    rules: {
      'no-restricted-syntax': ['error', ...['ImportDeclaration', 'ImportExpression', 'ExportNamedDeclaration', 'ExportAllDeclaration'].map((node) => ({
        selector: `${node}[source.value=/standin\\//]`, message: 'only tests, src/lab and src/check may use the stand-in API server (src/kube/standin)',
      }))],
    },
  },
  layer('mesh', ['cni', 'netlink', 'lab', 'firewall', 'cli', 'dataplane']),
  // The fast path programs the kernel from what it is given: it never knows where pods, peers or leases come from.
  layer('fastpath', ['cni', 'lab', 'cli', 'modes', 'mesh', 'kube', 'lease', 'agent', 'dataplane']),
  // Manifests are text: they use the agent's flag names and its config parsers (so that only what
  // the agent accepts is rendered), never anything that touches the kernel or an API.
  {
    files: ['src/manifests/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [...[['agent', 'options.ts'], ['cni', 'config.ts'], ['lease', 'network-config.ts']].map(([f, only]) => ({
          group: [`**/${f}/**`, `../${f}/*`, `!**/${f}/${only}`, `!../${f}/${only}`], message: `src/manifests may use src/${f}/${only} only`,
        })), ...['netlink', 'firewall', 'dataplane', 'native', 'ipam', 'lab', 'modes', 'mesh', 'kube', 'cli', 'subnet', 'probe', 'check'].map((f) => ({
          group: [`**/${f}/**`, `../${f}/*`], message: `src/manifests must not depend on src/${f}`,
        }))],
      }],
    },
  },
  // The probes run in lab namespaces and in cluster pods alike: they know neither.
  layer('probe', ['cni', 'ipam', 'netlink', 'lab', 'firewall', 'cli', 'dataplane', 'subnet', 'lease', 'agent', 'modes', 'mesh', 'kube', 'check']),
  // `weft check` talks to a cluster (kube) and reads probe reports (probe); it programs nothing.
  layer('check', ['cni', 'ipam', 'netlink', 'lab', 'firewall', 'cli', 'dataplane', 'subnet', 'lease', 'agent', 'modes', 'mesh']),
);
