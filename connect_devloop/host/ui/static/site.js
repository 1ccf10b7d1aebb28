/*
 * The emulated site's side of the Connect bridge (connect-devloop).
 *
 * Atlassian's connect-host.js (atlassian-connect-js) does the bridging: it creates each add-on
 * iframe (connectHost.create), speaks postMessage with the all.js in it, and implements the
 * modules it ships (AP.resize and the rest of env, AP.dialog, AP.flag, AP.events...). This file
 * gives it what a product gives it:
 *   - the product modules: AP.context (getToken, getContext), AP.request, AP.user,
 *     AP.navigator (connectHost.defineModule);
 *   - the dialog and flag providers AP.dialog and AP.flag draw with (the framework adaptor);
 *   - a content resolver, for iframes whose JWT expired before they were opened;
 *   - the iframes of the page, from the page's "connect-dev-site" JSON.
 * The site signs every URL and token (POST {api}/iframe and {api}/context); nothing secret
 * is in the page.
 */
(function () {
  'use strict';

  var site = JSON.parse(document.getElementById('connect-dev-site').textContent);
  var host = window.connectHost;
  var $ = window.jQuery;

  wireMenus();
  wireWebhookButtons();
  if (!site.bridge || !host || !$) {
    return; // The page drew plain iframes and says why.
  }

  // --- talking to the site ------------------------------------------------------------------

  function apiPost(path, body) {
    return fetch(site.api + path, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(body),
      credentials: 'same-origin'
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) {
          throw new Error(answer.error || response.statusText);
        }
        return answer;
      });
    });
  }

  function contextOf(extension) {
    var options = (extension && extension.options) || {};
    return options.productContext || {};
  }

  // A method that answers with a promise: the add-on can pass a callback or await it.
  function promised(method) {
    method.returnsPromise = true;
    return method;
  }

  // --- product modules ----------------------------------------------------------------------

  host.defineModule('context', {
    getToken: promised(function (callback) {
      var extension = callback._context.extension;
      return apiPost('/context', {app: extension.addon_key, context: contextOf(extension)})
        .then(function (answer) {
          if (!answer.token) {
            throw new Error('the app has no sharedSecret (authentication none): no token');
          }
          return answer.token;
        });
    }),
    getContext: promised(function (callback) {
      var extension = callback._context.extension;
      return apiPost('/context', {app: extension.addon_key, context: contextOf(extension)})
        .then(function (answer) { return answer.context; });
    })
  });

  host.defineModule('user', {
    getCurrentUser: promised(function (callback) {
      return Promise.resolve({atlassianAccountId: site.user.accountId});
    }),
    getLocale: promised(function (callback) {
      return Promise.resolve(site.user.locale);
    }),
    getTimeZone: promised(function (callback) {
      return Promise.resolve(site.user.timeZone);
    })
  });

  host.defineModule('navigator', {
    go: function (target, context, callback) {
      var url = navigatorUrl(target, context || {});
      if (url) {
        window.location.assign(url);
      } else {
        console.error('connect-devloop: AP.navigator.go("' + target + '") is not emulated');
      }
    },
    reload: function (callback) {
      window.location.reload();
    },
    getLocation: promised(function (callback) {
      return Promise.resolve(window.location.href);
    })
  });

  function navigatorUrl(target, context) {
    var cp = site.contextPath;
    var custom = context.customData || {};
    switch (target) {
      case 'dashboard':
      case 'home':
      case 'site':
        return cp + '/';
      case 'issue':
        return context.issueKey ? cp + '/browse/' + encodeURIComponent(context.issueKey) : null;
      case 'addonModule':
        var query = Object.keys(custom).map(function (name) {
          return encodeURIComponent('ac.' + name) + '=' + encodeURIComponent(custom[name]);
        }).join('&');
        return cp + '/plugins/servlet/ac/' + encodeURIComponent(context.addonKey) + '/' +
          encodeURIComponent(context.moduleKey) + (query ? '?' + query : '');
      case 'contentview':
        return context.contentId ?
          cp + '/pages/viewpage.action?pageId=' + encodeURIComponent(context.contentId) : null;
      default:
        return null;
    }
  }

  // AP.request: the emulated REST API, as the signed-in user (the page's own session).
  host.defineModule({
    request: promised(function (options, callback) {
      return restRequest(options, callback._context.extension);
    })
  });

  function restRequest(options, extension) {
    if (typeof options === 'string') {
      options = {url: options};
    }
    options = options || {};
    var url = String(options.url || '');
    if (url.charAt(0) !== '/' || url.charAt(1) === '/') {
      return Promise.reject({
        err: 'AP.request takes a URL relative to the product, such as /rest/api/3/myself',
        xhr: xhrOf(0, '', '', {})
      });
    }
    var method = String(options.type || options.method || 'GET').toUpperCase();
    var headers = {'X-Atlassian-Token': 'no-check'};
    Object.keys(options.headers || {}).forEach(function (name) {
      headers[name] = options.headers[name];
    });
    // As the product's bridge does: the user's call, made for this app (and in its scopes).
    headers['AP-Client-Key'] = extension.addon_key;
    if (options.accept) {
      headers.Accept = options.accept;
    }
    var body = options.data;
    if (body !== undefined && body !== null && (method === 'GET' || method === 'HEAD')) {
      var extra = typeof body === 'string' ? body : new URLSearchParams(body).toString();
      url += (url.indexOf('?') >= 0 ? '&' : '?') + extra;
      body = undefined;
    } else if (body !== undefined && body !== null) {
      var type = options.contentType || 'application/x-www-form-urlencoded';
      headers['Content-Type'] = type;
      if (typeof body === 'object') {
        body = type.indexOf('json') >= 0 ? JSON.stringify(body) : new URLSearchParams(body).toString();
      }
    }
    return fetch(site.contextPath + url, {
      method: method,
      headers: headers,
      body: body,
      credentials: 'same-origin',
      cache: options.cache === false ? 'no-store' : 'default'
    }).then(function (response) {
      return response.text().then(function (text) {
        var responseHeaders = {};
        response.headers.forEach(function (value, name) { responseHeaders[name] = value; });
        var xhr = xhrOf(response.status, response.statusText, text, responseHeaders);
        if (response.ok) {
          return {body: text, xhr: xhr};
        }
        throw {err: response.statusText || 'HTTP ' + response.status, xhr: xhr};
      });
    }, function (error) {
      throw {err: String(error), xhr: xhrOf(0, '', '', {})};
    });
  }

  // What crosses postMessage of an XMLHttpRequest; all.js gives it its methods back.
  function xhrOf(status, statusText, responseText, headers) {
    return {
      readyState: 4,
      status: status,
      statusText: statusText,
      responseText: responseText,
      responseHeaders: headers
    };
  }

  // --- dialogs ------------------------------------------------------------------------------

  var SIZES = {
    small: ['400px', '200px'],
    medium: ['600px', '400px'],
    large: ['800px', '70%'],
    xlarge: ['968px', '80%'],
    fullscreen: ['100%', '100%'],
    maximum: ['100%', '100%']
  };
  var dialogStack = [];
  var preparedDialogs = {}; // addon_key|key -> the site's answer, for a web item's dialog

  var dialogs = {
    create: function (options, extension) {
      var entry = dialogShell(options, extension);
      var prepared = preparedDialogs[extension.addon_key + '|' + extension.key];
      delete preparedDialogs[extension.addon_key + '|' + extension.key];
      var answer = prepared ? Promise.resolve(prepared) : apiPost('/iframe', {
        app: extension.addon_key, module: extension.key, context: contextOf(extension)
      });
      answer.then(function (resolved) {
        if (entry.closed) {
          return;
        }
        if (entry.title && !options.header) {
          entry.title.textContent = resolved.name;
        }
        var dialogOptions = $.extend({}, resolved.options, extension.options, {
          isDialog: true,
          dialogId: options.id,
          autoresize: false,
          width: '100%',
          height: '100%'
        });
        var $container = host.create({
          addon_key: extension.addon_key,
          key: resolved.key,
          url: resolved.url,
          options: dialogOptions
        });
        entry.body.appendChild($container[0]);
        entry.iframe = $container.find('iframe')[0];
      }).catch(function (error) {
        entry.body.textContent = 'The dialog could not open: ' + error.message;
      });
    },
    close: function () {
      closeDialog(dialogStack[dialogStack.length - 1]);
    },
    isActiveDialog: function (addonKey) {
      var top = dialogStack[dialogStack.length - 1];
      return Boolean(top) && top.addonKey === addonKey;
    },
    setButtonDisabled: function (identifier, disabled) {
      var button = findButton(identifier);
      if (button) {
        button.disabled = Boolean(disabled);
      }
    },
    isButtonDisabled: function (identifier) {
      var button = findButton(identifier);
      return Boolean(button && button.disabled);
    },
    toggleButton: function (identifier) {
      var button = findButton(identifier);
      if (button) {
        button.disabled = !button.disabled;
      }
    },
    setButtonHidden: function (identifier, hidden) {
      var button = findButton(identifier);
      if (button) {
        button.hidden = Boolean(hidden);
      }
    },
    isButtonHidden: function (identifier) {
      var button = findButton(identifier);
      return Boolean(button && button.hidden);
    },
    createButton: function (action) {
      var top = dialogStack[dialogStack.length - 1];
      if (top && top.footer) {
        top.footer.appendChild(dialogButton(top, action));
      }
    }
  };

  function dialogShell(options, extension) {
    var size = SIZES[options.size] || [];
    var width = options.width || size[0] || '50%';
    var height = options.height || size[1] || '50%';
    var backdrop = element('div', 'cd-dialog-backdrop');
    var dialog = element('section', 'cd-dialog' + (options.chrome ? ' cd-dialog-chrome' : ''));
    dialog.setAttribute('role', 'dialog');
    dialog.setAttribute('aria-modal', 'true');
    dialog.dataset.addonKey = extension.addon_key;
    dialog.dataset.key = extension.key;
    dialog.style.width = width;
    dialog.style.height = height;
    var entry = {
      addonKey: extension.addon_key,
      id: options.id,
      onHide: options.onHide,
      element: backdrop,
      closed: false,
      title: null,
      footer: null,
      buttons: {}
    };
    if (options.chrome) {
      var header = element('header', 'cd-dialog-header');
      entry.title = element('h2');
      entry.title.textContent = options.header || '';
      var close = element('button', 'cd-dialog-close');
      close.type = 'button';
      close.setAttribute('aria-label', 'Close');
      close.textContent = '\u00d7';
      close.addEventListener('click', function () { closeDialog(entry, true); });
      header.appendChild(entry.title);
      header.appendChild(close);
      dialog.appendChild(header);
    }
    entry.body = element('div', 'cd-dialog-body');
    dialog.appendChild(entry.body);
    if (options.chrome) {
      entry.footer = element('footer', 'cd-dialog-footer');
      if (options.hint) {
        var hint = element('span', 'cd-dialog-hint');
        hint.textContent = options.hint;
        entry.footer.appendChild(hint);
      }
      (options.actions || []).forEach(function (action) {
        entry.footer.appendChild(dialogButton(entry, action));
      });
      dialog.appendChild(entry.footer);
    }
    backdrop.appendChild(dialog);
    document.body.appendChild(backdrop);
    dialogStack.push(entry);
    return entry;
  }

  function dialogButton(entry, action) {
    var button = element('button', 'cd-button' + (action.type === 'primary' ? ' cd-primary' : ''));
    button.type = 'button';
    button.textContent = action.text || action.identifier;
    button.disabled = Boolean(action.disabled);
    button.hidden = Boolean(action.hidden);
    button.dataset.identifier = action.identifier;
    button.addEventListener('click', function () {
      if (typeof action.onClick === 'function') {
        action.onClick();
      }
      // all.js closes its dialog on submit and cancel; one without the bridge cannot.
      if (action.identifier === 'cancel' && !entry.established) {
        closeDialog(entry, true);
      }
    });
    entry.buttons[action.identifier] = button;
    return button;
  }

  function findButton(identifier) {
    var top = dialogStack[dialogStack.length - 1];
    return top ? top.buttons[identifier] : null;
  }

  // `announce`: closed by the site (close button, Escape), so the app hears dialog.close.
  function closeDialog(entry, announce) {
    if (!entry || entry.closed) {
      return;
    }
    entry.closed = true;
    dialogStack.splice(dialogStack.indexOf(entry), 1);
    if (announce) {
      host.broadcastEvent('dialog.close', {addon_key: entry.addonKey}, {});
    }
    if (entry.iframe && entry.iframe.id) {
      host.destroy(entry.iframe.id);
    }
    entry.element.remove();
    if (typeof entry.onHide === 'function') {
      entry.onHide();
    }
  }

  host.onIframeEstablished(function (data) {
    var options = (data.extension && data.extension.options) || {};
    dialogStack.forEach(function (entry) {
      if (options.isDialog && options.dialogId === entry.id) {
        entry.established = true;
      }
    });
  });

  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape' && dialogStack.length) {
      closeDialog(dialogStack[dialogStack.length - 1], true);
    }
  });

  // --- flags --------------------------------------------------------------------------------

  var flags = {
    create: function (options) {
      var flag = element('div', 'cd-flag cd-flag-' + (options.type || 'info'));
      flag.setAttribute('role', 'status');
      flag.dataset.flagId = options.id;
      var title = element('strong');
      title.textContent = options.title || '';
      var body = element('p');
      body.textContent = options.body || '';
      var close = element('button', 'cd-flag-close');
      close.type = 'button';
      close.setAttribute('aria-label', 'Dismiss');
      close.textContent = '\u00d7';
      flag.appendChild(close);
      flag.appendChild(title);
      flag.appendChild(body);
      (options.actions || []).forEach(function (action) {
        var link = element('button', 'cd-link');
        link.type = 'button';
        link.textContent = action.actionText;
        link.addEventListener('click', function () { action.executeAction(); });
        flag.appendChild(link);
      });
      document.getElementById('cd-flags').appendChild(flag);
      var closed = false;
      function dismiss() {
        if (closed) {
          return;
        }
        closed = true;
        flag.remove();
        if (typeof options.onClose === 'function') {
          options.onClose(options.id);
        }
      }
      close.addEventListener('click', dismiss);
      if (options.close === 'auto') {
        setTimeout(dismiss, 8000);
      }
      return {close: dismiss};
    }
  };

  // --- wiring -------------------------------------------------------------------------------

  function provider(name, implementation) {
    return {
      getModuleRegistrationName: function () { return name; },
      isEnabled: function () { return true; },
      getProvider: function () { return implementation; }
    };
  }
  host.getFrameworkAdaptor().registerModule(provider('dialog', dialogs));
  host.getFrameworkAdaptor().registerModule(provider('flag', flags));

  // AP.dialog.create({key}) finds each app's dialog modules and their options here.
  window._AP = window._AP || {};
  window._AP.dialogModules = site.dialogModules;

  // An iframe whose URL's JWT expired before it opened gets a fresh URL from the site.
  host.registerContentResolver.resolveByExtension(function (extension) {
    return $.Deferred(function (deferred) {
      apiPost('/iframe', {
        app: extension.addon_key, module: extension.key, context: contextOf(extension)
      }).then(function (answer) {
        deferred.resolve({url: answer.url, addon_key: extension.addon_key, key: extension.key,
          options: {}});
      }, function (error) {
        deferred.reject(null, {text: error.message});
      });
    }).promise();
  });

  site.iframes.forEach(function (spec) {
    mount(document.getElementById(spec.id), spec);
  });

  function mount(slot, spec) {
    var $container = host.create({
      addon_key: spec.addon_key,
      key: spec.key,
      url: spec.url,
      options: spec.options
    });
    $(slot).append($container);
    return $container;
  }

  // Buttons that open a module's iframe in a panel (issue glances and contents).
  document.addEventListener('click', function (event) {
    var opener = event.target.closest('[data-ac-open]');
    if (opener) {
      openPanel(opener);
      return;
    }
    var dialogItem = event.target.closest('[data-ac-dialog]');
    if (dialogItem) {
      openWebItemDialog(dialogItem.dataset.acDialog, dialogItem.dataset.acKey);
    }
  });

  function openPanel(button) {
    var target = document.getElementById(button.dataset.acOpen);
    var key = button.dataset.acApp + '|' + button.dataset.acKey;
    var open = target.querySelector('.cd-opened');
    if (open) {
      var iframe = open.querySelector('iframe');
      if (iframe && iframe.id) {
        host.destroy(iframe.id);
      }
      open.remove();
      if (open.dataset.module === key) {
        return; // a second click closes it
      }
    }
    apiPost('/iframe', {app: button.dataset.acApp, module: button.dataset.acKey,
      context: site.context})
      .then(function (answer) {
        var panel = element('section', 'cd-panel cd-opened');
        panel.dataset.module = key;
        var heading = element('h3');
        heading.textContent = answer.name;
        panel.appendChild(heading);
        var slot = element('div', 'ac-slot');
        panel.appendChild(slot);
        target.appendChild(panel);
        mount(slot, {addon_key: button.dataset.acApp, key: answer.key, url: answer.url,
          options: answer.options});
      })
      .catch(function (error) {
        target.textContent = 'Could not open: ' + error.message;
      });
  }

  function openWebItemDialog(addonKey, key) {
    apiPost('/iframe', {app: addonKey, module: key, context: site.context})
      .then(function (answer) {
        preparedDialogs[addonKey + '|' + key] = answer;
        host.dialog.create({addon_key: addonKey, key: key,
          options: {productContext: site.context}}, answer.dialog);
      })
      .catch(function (error) {
        console.error('connect-devloop: the dialog could not open: ' + error.message);
      });
  }

  // --- helpers ------------------------------------------------------------------------------

  function element(tag, className) {
    var created = document.createElement(tag);
    if (className) {
      created.className = className;
    }
    return created;
  }

  // The issue page's "Fire webhook" buttons: the site sends the event now and lists what each
  // delivery answered (no bridge needed).
  function wireWebhookButtons() {
    document.addEventListener('click', function (event) {
      var button = event.target.closest('[data-cd-fire]');
      if (!button) {
        return;
      }
      var out = document.getElementById('cd-webhook-deliveries');
      button.disabled = true;
      fetch(site.api + '/webhooks/fire', {
        method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({event: button.dataset.cdFire, issue: button.dataset.cdIssue,
          app: button.dataset.cdApp}),
        credentials: 'same-origin'
      }).then(function (response) {
        return response.json();
      }).then(function (answer) {
        out.textContent = '';
        if (answer.error) {
          out.appendChild(element('li')).textContent = answer.error;
          return;
        }
        answer.deliveries.forEach(function (delivery) {
          out.appendChild(element('li')).textContent = delivery.event + ' \u2192 ' +
            delivery.url + ': ' + (delivery.status === null ? 'no answer (' + delivery.error +
            ')' : 'HTTP ' + delivery.status) + ' in ' + Math.round(delivery.duration_ms) + ' ms';
        });
        answer.skipped.forEach(function (skipped) {
          out.appendChild(element('li')).textContent = 'not sent: ' + JSON.stringify(skipped);
        });
        if (!answer.deliveries.length && !answer.skipped.length) {
          out.appendChild(element('li')).textContent = 'No app declares ' + answer.event + '.';
        }
      }).catch(function (error) {
        out.textContent = 'Could not fire: ' + error.message;
      }).then(function () {
        button.disabled = false;
      });
    });
  }

  // Menus (<details>) close when something else is clicked.
  function wireMenus() {
    document.addEventListener('click', function (event) {
      document.querySelectorAll('details.cd-menu[open]').forEach(function (menu) {
        if (!menu.contains(event.target) || event.target.closest('a, button')) {
          menu.removeAttribute('open');
        }
      });
    });
  }
}());
