/*
 * connect-devloop's addition to all.js, after Atlassian's iframe.js.
 *
 * AP.request is a product module: the emulated site's page answers it with a promise of
 * {body, xhr}, or rejects it with {err, xhr}. Functions cannot cross postMessage, so the
 * success and error callbacks add-ons pass in the options stay here, and are called from
 * that promise; the xhr gets back the methods a real XMLHttpRequest has.
 */
(function (AP) {
  'use strict';
  if (!AP || typeof AP.request !== 'function') {
    return;
  }
  var hostRequest = AP.request;

  function withMethods(xhr) {
    xhr = xhr || {};
    var headers = xhr.responseHeaders || {};
    xhr.getResponseHeader = function (name) {
      var value = headers[String(name).toLowerCase()];
      return value === undefined ? null : value;
    };
    xhr.getAllResponseHeaders = function () {
      return Object.keys(headers).map(function (name) {
        return name + ': ' + headers[name];
      }).join('\r\n');
    };
    return xhr;
  }

  AP.request = function (url, options) {
    if (typeof url === 'object' && url !== null) {
      options = url;
    } else {
      options = Object.assign({}, options || {}, {url: url});
    }
    var plain = {};
    Object.keys(options).forEach(function (name) {
      if (typeof options[name] !== 'function') {
        plain[name] = options[name];
      }
    });
    var success = options.success;
    var error = options.error;
    return hostRequest(plain).then(function (answer) {
      var result = {body: answer.body, xhr: withMethods(answer.xhr)};
      if (typeof success === 'function') {
        success(result.body, result.xhr.statusText, result.xhr);
      }
      return result;
    }, function (failure) {
      var result = {err: failure && failure.err, xhr: withMethods(failure && failure.xhr)};
      if (typeof error === 'function') {
        error(result.xhr, result.xhr.statusText, result.err);
        // The callback handled it; the promise still rejects for those who await it.
      }
      throw result;
    });
  };
}(window.AP));
