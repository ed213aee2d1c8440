// ESLint (flat config) for the browser tracker and its node tests; `npx eslint` from the root.
'use strict';
const js = require('@eslint/js');
const globals = require('globals');

module.exports = [
  {ignores: ['node_modules/', '.venv/', 'engagement/console/', 'engagement/demo/']},
  js.configs.recommended,
  {
    // The tracker's parts: scripts joined into one function of (w, d, CFG) by tracker.py. Each
    // names what it takes from the others (/* global */) and what it gives them (/* exported */).
    files: ['engagement/monitoring/tracker/*.js'],
    languageOptions: {
      ecmaVersion: 2020,
      sourceType: 'script',
      globals: {...globals.browser, w: 'readonly', d: 'readonly', CFG: 'readonly'}
    },
    rules: {'no-unused-vars': ['error', {vars: 'all', args: 'none', caughtErrors: 'none'}]}
  },
  {
    files: ['engagement/monitoring/engage.js', 'engagement/monitoring/crossdomain.js'],
    languageOptions: {ecmaVersion: 2020, sourceType: 'script', globals: globals.browser},
    rules: {'no-unused-vars': ['error', {args: 'none', caughtErrors: 'none'}]}
  },
  {
    files: ['tests/js/**/*.js', 'eslint.config.js'],
    languageOptions: {ecmaVersion: 2022, sourceType: 'commonjs', globals: globals.node}
  }
];
