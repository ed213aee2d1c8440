'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const {load, config, page} = require('./load');

// push.js and invitations.js: messages handed to message() as the stream would, engage.js
// "loaded" when the test calls engageReady; the scripts the page asked for are recorded.
function push() {
  const {w, d} = page('https://www.shop.test/');
  const scripts = [];
  Object.assign(d, {
    createElement: () => ({}),
    head: {appendChild: (s) => scripts.push(s.src)}
  });
  const published = [];
  const t = load(
    ['core.js', 'storage.js', 'push.js', 'invitations.js'],
    {
      w,
      d,
      CFG: config(),
      visitID: 'V',
      pageID: 'P',
      engaging: () => true,
      pub: (name) => published.push(name),
      appendContent: () => {},
      removeContent: () => {}
    },
    ['message', 'engageReady']
  );
  return {t, w, scripts, published};
}

test('the replay point passes an invitation once engage.js has handled it', () => {
  const {t, w, scripts, published} = push();
  const invited = [];
  const replayPoint = () => w.localStorage.getItem('_eng_seq_V');

  t.message({id: 5, channel: 'gpe.invite', data: {attemptID: 'A1'}});
  t.message({id: 6, channel: 'site.news', data: {}});
  assert.deepEqual(scripts, ['https://engine.test/engage.js']);
  assert.deepEqual(published, ['site.news']);
  // Left now (engage.js still loading), the next page of the visit asks for both again.
  assert.equal(replayPoint(), null);

  t.engageReady({invite: (o) => invited.push(o.attemptID)});
  assert.deepEqual(invited, ['A1']);
  assert.equal(replayPoint(), '6');

  t.message({id: 7, channel: 'gpe.invite', data: {attemptID: 'A2'}}); // engage.js is here
  assert.deepEqual(invited, ['A1', 'A2']);
  assert.equal(replayPoint(), '7');
});
