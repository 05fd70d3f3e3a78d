<?xml version="1.0" encoding="UTF-8"?>
<!--
  Shows an RSS 2.0 or Atom feed of this site as a page when a browser opens it (the feeds
  name this file in an xml-stylesheet instruction; feed readers ignore it). XSLT 1.0, the
  version browsers run. The site's name, description and address are filled in by
  newsletter.feeds.render.stylesheet, so the page carries the site's masthead.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
<xsl:output method="html" encoding="UTF-8" indent="no" doctype-system="about:legacy-compat"/>

<xsl:variable name="site-title">The site</xsl:variable>
<xsl:variable name="site-description"></xsl:variable>
<xsl:variable name="base-url"></xsl:variable>

<xsl:variable name="months">JanFebMarAprMayJunJulAugSepOctNovDec</xsl:variable>

<xsl:template match="/">
  <xsl:variable name="rss" select="boolean(rss/channel)"/>
  <xsl:variable name="format">
    <xsl:choose><xsl:when test="$rss">RSS</xsl:when><xsl:otherwise>Atom</xsl:otherwise></xsl:choose>
  </xsl:variable>
  <xsl:variable name="title">
    <xsl:choose>
      <xsl:when test="$rss"><xsl:value-of select="rss/channel/title"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="atom:feed/atom:title"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="language">
    <xsl:choose>
      <xsl:when test="$rss"><xsl:value-of select="rss/channel/language"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="atom:feed/@xml:lang"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="self" select="(rss/channel/atom:link[@rel='self'] | atom:feed/atom:link[@rel='self'])[1]/@href"/>
  <xsl:variable name="page" select="(rss/channel/link | atom:feed/atom:link[@rel='alternate']/@href)[1]"/>
  <html lang="{$language}">
  <head>
    <meta name="viewport" content="width=device-width, initial-scale=1"/>
    <meta name="robots" content="noindex"/>
    <title><xsl:value-of select="$title"/> (web feed)</title>
    <style>
      :root { --ink: #1b1b1f; --muted: #5c5f66; --rule: #e3e3e8; --accent: #9b1c1c; }
      * { box-sizing: border-box; }
      body { margin: 0; font: 17px/1.6 Georgia, "Noto Serif", "Noto Serif CJK KR", serif; color: var(--ink); background: #fdfdfb; overflow-wrap: anywhere; }
      header.site, main, footer.site { max-width: 46rem; margin: 0 auto; padding: 0 1.25rem; }
      header.site { border-bottom: 3px double var(--rule); padding-top: 1.5rem; padding-bottom: .75rem; }
      header.site a.name { font-size: 2rem; font-weight: bold; color: var(--ink); text-decoration: none; letter-spacing: -.01em; }
      header.site p { margin: .25rem 0 0; color: var(--muted); font-style: italic; }
      nav { display: flex; flex-wrap: wrap; gap: 0 1rem; }
      nav a { display: inline-block; padding: .3rem 0; min-height: 24px; font: 600 .85rem system-ui, sans-serif; text-transform: uppercase; letter-spacing: .04em; }
      a { color: var(--accent); }
      h1, h2, h3 { line-height: 1.25; }
      .kicker { margin: 1.5rem 0 0; color: var(--accent); font: 600 .8rem system-ui, sans-serif; text-transform: uppercase; letter-spacing: .06em; }
      h1 { margin: .25rem 0 .5rem; }
      .lede { margin: 0 0 1rem; color: var(--muted); font-style: italic; }
      aside.about { background: #f3f1ea; padding: .25rem 1rem .75rem; margin: 1rem 0 1.5rem; }
      aside.about h2 { font-size: 1.1rem; margin: .75rem 0 .25rem; }
      aside.about p { margin: .5rem 0; }
      code.address { display: block; padding: .5rem .75rem; background: #fff; border: 1px solid var(--rule); font: .9rem ui-monospace, "DejaVu Sans Mono", monospace; user-select: all; }
      .meta { color: var(--muted); font: .85rem system-ui, sans-serif; }
      ol.posts { list-style: none; padding: 0; }
      ol.posts li { padding: 1rem 0; border-bottom: 1px solid var(--rule); }
      ol.posts h3 { font-size: 1.3rem; margin: 0 0 .25rem; }
      ol.posts h3 a { display: block; color: var(--ink); text-decoration: none; }
      ol.posts h3 a:hover, ol.posts h3 a:focus { text-decoration: underline; }
      ol.posts p { margin: .25rem 0; }
      footer.site { color: var(--muted); font: .8rem system-ui, sans-serif; padding-top: 2rem; padding-bottom: 2rem; }
    </style>
  </head>
  <body>
    <header class="site">
      <a class="name" href="{$base-url}/"><xsl:value-of select="$site-title"/></a>
      <xsl:if test="normalize-space($site-description)">
        <p><xsl:value-of select="$site-description"/></p>
      </xsl:if>
      <nav aria-label="Sections"><a href="{$base-url}/">Latest</a><a href="{$base-url}/tags">Topics</a><a href="{$base-url}/search">Search</a><a href="{$base-url}/subscribe">Newsletter</a><a href="{$base-url}/feeds">RSS</a></nav>
    </header>
    <main>
      <p class="kicker">Web feed · <xsl:value-of select="$format"/></p>
      <h1 dir="auto"><xsl:value-of select="$title"/></h1>
      <xsl:variable name="description" select="(rss/channel/description | atom:feed/atom:subtitle)[1]"/>
      <xsl:if test="normalize-space($description) and normalize-space($description) != normalize-space($title) and normalize-space($description) != normalize-space($site-description)">
        <p class="lede" dir="auto"><xsl:value-of select="$description"/></p>
      </xsl:if>
      <aside class="about" aria-labelledby="about-feed">
        <h2 id="about-feed">This page is a web feed</h2>
        <p>A feed reader (an app such as NetNewsWire, Feedly, Inoreader, Thunderbird or newsboat) checks this address for you and shows each new article as soon as it is published. No account and no email address needed, and nobody tracks what you read.</p>
        <p>To subscribe, copy this address into your feed reader:</p>
        <code class="address"><xsl:value-of select="$self"/></code>
        <p>
          <a href="{$page}">Read these articles on the site</a>
          <xsl:text> · </xsl:text>
          <a href="{$base-url}/feeds">Every feed of <xsl:value-of select="$site-title"/></a>
        </p>
      </aside>
      <h2>Latest articles</h2>
      <xsl:choose>
        <xsl:when test="rss/channel/item | atom:feed/atom:entry">
          <ol class="posts">
            <xsl:apply-templates select="rss/channel/item | atom:feed/atom:entry"/>
          </ol>
        </xsl:when>
        <xsl:otherwise><p>Nothing here yet: new articles will appear in this feed.</p></xsl:otherwise>
      </xsl:choose>
    </main>
    <footer class="site"><xsl:value-of select="$site-title"/></footer>
  </body>
  </html>
</xsl:template>

<!-- An RSS item: title and description are HTML-escaped text (see render.py). -->
<xsl:template match="item">
  <xsl:variable name="published">
    <xsl:call-template name="rfc822-date"><xsl:with-param name="date" select="pubDate"/></xsl:call-template>
  </xsl:variable>
  <xsl:call-template name="post">
    <xsl:with-param name="link" select="link"/>
    <xsl:with-param name="title"><xsl:call-template name="unescape"><xsl:with-param name="text" select="title"/></xsl:call-template></xsl:with-param>
    <xsl:with-param name="published" select="$published"/>
    <xsl:with-param name="updated" select="substring(atom:updated, 1, 10)"/>
    <xsl:with-param name="author" select="dc:creator"/>
    <xsl:with-param name="summary"><xsl:call-template name="unescape"><xsl:with-param name="text" select="description"/></xsl:call-template></xsl:with-param>
  </xsl:call-template>
</xsl:template>

<!-- An Atom entry: the summary is text; a title of type html is escaped text. -->
<xsl:template match="atom:entry">
  <xsl:call-template name="post">
    <xsl:with-param name="link" select="atom:link[@rel='alternate']/@href"/>
    <xsl:with-param name="title">
      <xsl:choose>
        <xsl:when test="atom:title/@type = 'html'"><xsl:call-template name="unescape"><xsl:with-param name="text" select="atom:title"/></xsl:call-template></xsl:when>
        <xsl:otherwise><xsl:value-of select="atom:title"/></xsl:otherwise>
      </xsl:choose>
    </xsl:with-param>
    <xsl:with-param name="published" select="substring((atom:published | atom:updated)[1], 1, 10)"/>
    <xsl:with-param name="updated" select="substring(atom:updated, 1, 10)"/>
    <xsl:with-param name="author" select="atom:author/atom:name"/>
    <xsl:with-param name="summary" select="atom:summary"/>
  </xsl:call-template>
</xsl:template>

<xsl:template name="post">
  <xsl:param name="link"/>
  <xsl:param name="title"/>
  <xsl:param name="published"/>
  <xsl:param name="updated"/>
  <xsl:param name="author"/>
  <xsl:param name="summary"/>
  <li>
    <h3 dir="auto"><a href="{$link}"><xsl:value-of select="$title"/></a></h3>
    <p class="meta">
      <xsl:if test="$published">
        <time datetime="{$published}"><xsl:call-template name="human-date"><xsl:with-param name="date" select="$published"/></xsl:call-template></time>
      </xsl:if>
      <xsl:if test="$updated and $updated != $published">
        <xsl:text> · updated </xsl:text>
        <time datetime="{$updated}"><xsl:call-template name="human-date"><xsl:with-param name="date" select="$updated"/></xsl:call-template></time>
      </xsl:if>
      <xsl:if test="normalize-space($author)">
        <xsl:text> · </xsl:text><span dir="auto"><xsl:value-of select="$author"/></span>
      </xsl:if>
    </p>
    <xsl:if test="normalize-space($summary) and normalize-space($summary) != normalize-space($title)">
      <p dir="auto"><xsl:value-of select="$summary"/></p>
    </xsl:if>
  </li>
</xsl:template>

<!-- "Wed, 04 Nov 2026 09:00:00 +0000" (as feedgen writes pubDate) -> "2026-11-04" -->
<xsl:template name="rfc822-date">
  <xsl:param name="date"/>
  <xsl:variable name="rest" select="normalize-space(substring-after($date, ','))"/>
  <xsl:variable name="day" select="substring-before($rest, ' ')"/>
  <xsl:variable name="month" select="substring(substring-after($rest, ' '), 1, 3)"/>
  <xsl:variable name="year" select="substring(substring-after(substring-after($rest, ' '), ' '), 1, 4)"/>
  <xsl:if test="contains($months, $month) and string-length($month) = 3">
    <xsl:value-of select="concat($year, '-', format-number(string-length(substring-before($months, $month)) div 3 + 1, '00'), '-', format-number($day, '00'))"/>
  </xsl:if>
</xsl:template>

<!-- "2026-11-04" -> "4 Nov 2026" -->
<xsl:template name="human-date">
  <xsl:param name="date"/>
  <xsl:value-of select="concat(number(substring($date, 9, 2)), ' ', substring($months, (number(substring($date, 6, 2)) - 1) * 3 + 1, 3), ' ', substring($date, 1, 4))"/>
</xsl:template>

<!-- Undo the HTML escaping of text (&amp; &lt; &gt; &quot; &#x27;), left to right, so that
     "&amp;lt;" stays "&lt;". The result is output as text, never as markup. -->
<xsl:template name="unescape">
  <xsl:param name="text"/>
  <xsl:choose>
    <xsl:when test="contains($text, '&amp;')">
      <xsl:value-of select="substring-before($text, '&amp;')"/>
      <xsl:variable name="rest" select="substring-after($text, '&amp;')"/>
      <xsl:variable name="entity" select="substring-before($rest, ';')"/>
      <xsl:variable name="character">
        <xsl:choose>
          <xsl:when test="$entity = 'amp'">&amp;</xsl:when>
          <xsl:when test="$entity = 'lt'">&lt;</xsl:when>
          <xsl:when test="$entity = 'gt'">&gt;</xsl:when>
          <xsl:when test="$entity = 'quot'">"</xsl:when>
          <xsl:when test="$entity = '#x27' or $entity = '#39'">'</xsl:when>
        </xsl:choose>
      </xsl:variable>
      <xsl:choose>
        <xsl:when test="string-length($character) = 1">
          <xsl:value-of select="$character"/>
          <xsl:call-template name="unescape"><xsl:with-param name="text" select="substring-after($rest, ';')"/></xsl:call-template>
        </xsl:when>
        <xsl:otherwise>
          <xsl:text>&amp;</xsl:text>
          <xsl:call-template name="unescape"><xsl:with-param name="text" select="$rest"/></xsl:call-template>
        </xsl:otherwise>
      </xsl:choose>
    </xsl:when>
    <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
  </xsl:choose>
</xsl:template>

</xsl:stylesheet>
